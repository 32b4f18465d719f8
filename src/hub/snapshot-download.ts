/**
 * Brings the files awq-ts needs from one repo revision into the cache and returns the snapshot folder,
 * the way huggingface_hub's snapshot_download does: list the files at the commit, HEAD each missing one,
 * download the missing blobs in parallel, link them into snapshots/<commit>/, record refs/<revision>.
 */
import { mkdir, stat, statfs } from "node:fs/promises";
import { RepoCache } from "./cache-layout.js";
import { findCachedSnapshot } from "./cached-snapshot.js";
import { ensureBlob } from "./download-blob.js";
import type { HubEnv } from "./env.js";
import { formatBytes, HubError } from "./errors.js";
import { selectNeededFiles } from "./file-filter.js";
import { type FileMetadata, HubClient, HubNetworkError } from "./hub-client.js";
import type { ProgressReporter } from "./progress.js";

export interface SnapshotRequest {
  repoId: string;
  revision: string;
  env: HubEnv;
  reporter?: ProgressReporter;
  /** Files downloaded at once. */
  concurrency?: number;
  /** Stops the downloads; partial files stay resumable. */
  signal?: AbortSignal;
}

/**
 * Runs `work` over `items` with at most `limit` in flight. The first failure aborts `controller`, so
 * the other downloads stop too (their partial files stay for a resume), and is the error reported.
 */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  controller: AbortController,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let firstError: unknown;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && !controller.signal.aborted) {
      try {
        await work(items[next++]!);
      } catch (err) {
        if (!controller.signal.aborted) {
          firstError = err;
          controller.abort(err);
        }
      }
    }
  });
  await Promise.all(runners);
  if (firstError !== undefined) throw firstError;
  controller.signal.throwIfAborted();
}

/** Fails before downloading anything when the cache's disk cannot hold what is missing. */
export async function ensureFreeSpace(dir: string, neededBytes: number, what: string): Promise<void> {
  if (neededBytes <= 0) return;
  const fsInfo = await statfs(dir);
  const freeBytes = Number(fsInfo.bavail) * Number(fsInfo.bsize);
  if (freeBytes < neededBytes) {
    throw new HubError(
      `not enough disk space for ${what}: ${neededBytes} bytes (${formatBytes(neededBytes)}) are needed in ${dir} ` +
        `but only ${formatBytes(freeBytes)} are free; free up space or set HF_HUB_CACHE to a larger disk`,
    );
  }
}

async function offlineSnapshot(cache: RepoCache, revision: string, why: string): Promise<string> {
  const found = await findCachedSnapshot(cache, revision);
  if ("dir" in found) return found.dir;
  throw new HubError(`${why}, and ${found.missing}: run \`awq pull ${cache.repoId}\` while online first`);
}

export async function downloadSnapshot(request: SnapshotRequest): Promise<string> {
  const { repoId, revision, env } = request;
  const cache = new RepoCache(env.cacheDir, repoId);
  if (env.offline) return offlineSnapshot(cache, revision, "offline mode is on (HF_HUB_OFFLINE=1)");
  try {
    return await downloadOnline(request, cache);
  } catch (err) {
    if (!(err instanceof HubNetworkError)) throw err;
    const cached = await findCachedSnapshot(cache, revision);
    const cacheState =
      "dir" in cached
        ? `the cache has ${repoId}@${revision} at ${cached.dir}, so HF_HUB_OFFLINE=1 will use it`
        : `${cached.missing}, so offline mode (HF_HUB_OFFLINE=1) cannot help yet`;
    throw new HubError(`${err.message}: check the network or HF_ENDPOINT; ${cacheState}`);
  }
}

async function downloadOnline(request: SnapshotRequest, cache: RepoCache): Promise<string> {
  const { env } = request;
  const client = new HubClient(env.endpoint, env.token);
  const controller = new AbortController();
  const stopOnAbort = () => controller.abort(request.signal?.reason);
  request.signal?.addEventListener("abort", stopOnAbort, { once: true });
  try {
    return await downloadFiles(request, cache, client, controller);
  } finally {
    request.signal?.removeEventListener("abort", stopOnAbort);
  }
}

async function downloadFiles(
  request: SnapshotRequest,
  cache: RepoCache,
  client: HubClient,
  controller: AbortController,
): Promise<string> {
  const { repoId, revision, reporter } = request;
  const info = await client.repoInfo(repoId, revision);
  const commit = info.sha;
  const files = selectNeededFiles(repoId, info.files);

  // Resolve by commit, as huggingface_hub does, so every file comes from the same commit.
  const missing: string[] = [];
  for (const file of files) if (!(await cache.hasSnapshotFile(commit, file))) missing.push(file);
  const metadata = new Map<string, FileMetadata>();
  await forEachLimited(missing, 8, controller, async (file) => {
    const meta = await client.fileMetadata(repoId, commit, file);
    if (meta.commit !== commit) {
      throw new HubError(`${file} resolved at commit ${meta.commit}, expected ${commit}; run again`);
    }
    metadata.set(file, meta);
  });

  await mkdir(cache.blobsDir, { recursive: true });
  let neededBytes = 0;
  const seenEtags = new Set<string>();
  for (const meta of metadata.values()) {
    if (seenEtags.has(meta.etag)) continue;
    seenEtags.add(meta.etag);
    if ((await stat(cache.blobPath(meta.etag)).catch(() => undefined))?.size === meta.size) continue;
    const partial = (await stat(cache.incompletePath(meta.etag)).catch(() => undefined))?.size ?? 0;
    neededBytes += meta.size - Math.min(partial, meta.size);
  }
  await ensureFreeSpace(cache.blobsDir, neededBytes, `${repoId}@${revision}`);

  // Files with identical contents share one blob: download each etag once.
  const blobJobs = new Map<string, Promise<void>>();
  await forEachLimited([...metadata.keys()], request.concurrency ?? 4, controller, async (file) => {
    const meta = metadata.get(file)!;
    let job = blobJobs.get(meta.etag);
    if (!job) {
      job = ensureBlob({
        client,
        cache,
        file,
        ...meta,
        onBytes: (downloadedBytes) => reporter?.update({ file, downloadedBytes, totalBytes: meta.size }),
        onWait: (holder) => reporter?.note(`${file}: waiting for ${holder}, which is downloading it`),
        signal: controller.signal,
      });
      blobJobs.set(meta.etag, job);
    }
    await job;
    await cache.linkSnapshotFile(commit, file, meta.etag);
  });
  await cache.writeRef(revision, commit);
  return cache.snapshotDir(commit);
}
