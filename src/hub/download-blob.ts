/**
 * Downloads one blob into the cache: bytes go to `blobs/<etag>.incomplete` (resumed with Range when it
 * already holds a prefix), then the size and digest are checked, and only then is it renamed to
 * `blobs/<etag>`. A corrupted download is deleted, never accepted.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat, truncate } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { acquireBlobLock } from "./blob-lock.js";
import type { RepoCache } from "./cache-layout.js";
import { formatBytes, HubError, networkErrorCode } from "./errors.js";
import type { HubClient } from "./hub-client.js";

export interface BlobRequest {
  client: HubClient;
  cache: RepoCache;
  /** The file's path in the repo, for messages. */
  file: string;
  etag: string;
  size: number;
  location: string;
  /** Total bytes of this blob present so far (including a resumed prefix). */
  onBytes?: (downloadedBytes: number) => void;
  onWait?: (holder: string) => void;
  /** Stops the download; what was written stays in `.incomplete` for the next run. */
  signal?: AbortSignal;
}

/** Network attempts per blob; each retry resumes from what the previous one wrote. */
const MAX_ATTEMPTS = 4;

const SHA256_HEX = /^[0-9a-f]{64}$/;
const GIT_SHA1_HEX = /^[0-9a-f]{40}$/;

/** The digest the etag promises: sha256 of the bytes for LFS files, git's blob sha1 for small files. */
function createEtagHash(etag: string, size: number): Hash | undefined {
  if (SHA256_HEX.test(etag)) return createHash("sha256");
  if (GIT_SHA1_HEX.test(etag)) return createHash("sha1").update(`blob ${size}\0`);
  return undefined; // an etag we cannot check: the size check still applies
}

async function fileSize(filePath: string): Promise<number> {
  return (await stat(filePath).catch(() => undefined))?.size ?? 0;
}

async function hashPrefix(hash: Hash | undefined, filePath: string): Promise<void> {
  if (!hash) return;
  for await (const chunk of createReadStream(filePath)) hash.update(chunk as Buffer);
}

/** Downloads the blob unless it is already in the cache; safe to call from several processes at once. */
export async function ensureBlob(request: BlobRequest): Promise<void> {
  const { cache, etag, size } = request;
  const blobPath = cache.blobPath(etag);
  if ((await stat(blobPath).catch(() => undefined))?.size === size) return;
  const lock = await acquireBlobLock(cache.lockPath(etag), {
    onWait: request.onWait,
    signal: request.signal,
  });
  try {
    // Another process may have finished it while we waited for the lock.
    if ((await stat(blobPath).catch(() => undefined))?.size === size) return;
    await downloadToIncomplete(request);
    await verifyIncomplete(request);
    await rename(cache.incompletePath(etag), blobPath);
  } finally {
    await lock.release();
  }
}

async function downloadToIncomplete(request: BlobRequest): Promise<void> {
  const { cache, etag, size, file } = request;
  const incomplete = cache.incompletePath(etag);
  for (let attempt = 1; ; attempt++) {
    let offset = await fileSize(incomplete);
    if (offset > size) {
      await truncate(incomplete, 0); // not a prefix of this blob
      offset = 0;
    }
    request.onBytes?.(offset);
    if (offset === size) return;
    try {
      await appendFromNetwork(request, offset);
      return;
    } catch (err) {
      const code = networkErrorCode(err);
      if (!code || request.signal?.aborted) throw err;
      const have = await fileSize(incomplete);
      if (attempt >= MAX_ATTEMPTS) {
        throw new HubError(
          `download of ${file} from ${new URL(request.location).origin} failed (${code}) after ${formatBytes(have)} of ` +
            `${formatBytes(size)}, ${MAX_ATTEMPTS} attempts; run the same command again to resume from ${incomplete}`,
        );
      }
      await sleep(250 * attempt);
    }
  }
}

/** One GET: appends to the `.incomplete` file from `offset` (206), or rewrites it whole (200). */
async function appendFromNetwork(request: BlobRequest, offset: number): Promise<void> {
  const { cache, etag, size, file, client } = request;
  const incomplete = cache.incompletePath(etag);
  const response = await client.download(request.location, offset, request.signal);
  if (response.status === 200 && offset > 0) {
    offset = 0; // the server ignored Range: start over
  } else if (response.status === 206) {
    const start = Number(/^bytes (\d+)-/.exec(response.headers.get("content-range") ?? "")?.[1]);
    if (start !== offset) {
      await response.body?.cancel();
      throw new HubError(
        `${request.location} resumed ${file} at byte ${start}, but ${offset} were asked for`,
      );
    }
  } else if (!response.ok) {
    await response.body?.cancel();
    throw new HubError(`download of ${file} failed: HTTP ${response.status} from ${request.location}`);
  }
  if (!response.body) throw new HubError(`download of ${file}: empty response from ${request.location}`);
  const handle = await open(incomplete, offset === 0 ? "w" : "a");
  let written = offset;
  try {
    for await (const chunk of response.body) {
      if (written + chunk.byteLength > size) {
        throw new HubError(`${request.location} sent more than the ${size} bytes announced for ${file}`);
      }
      await handle.write(chunk);
      written += chunk.byteLength;
      request.onBytes?.(written);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOSPC") {
      throw new HubError(
        `disk full while writing ${incomplete}: ${formatBytes(size - written)} more are needed for ${file}; ` +
          "free up space or set HF_HUB_CACHE to a larger disk, then run again to resume",
      );
    }
    throw err;
  } finally {
    await handle.close();
  }
  if (written !== size) {
    throw Object.assign(new Error(`connection closed after ${written} of ${size} bytes`), {
      code: "ECONNRESET",
    });
  }
}

/** Checks the finished `.incomplete` file against the hub's size and etag; deletes it when wrong. */
async function verifyIncomplete(request: BlobRequest): Promise<void> {
  const { cache, etag, size, file } = request;
  const incomplete = cache.incompletePath(etag);
  const actualSize = await fileSize(incomplete);
  const hash = createEtagHash(etag, size);
  await hashPrefix(hash, incomplete);
  const digest = hash?.digest("hex");
  if (actualSize === size && (digest === undefined || digest === etag)) return;
  await rm(incomplete, { force: true });
  const found =
    actualSize !== size ? `${actualSize} bytes instead of ${size}` : `digest ${digest} instead of ${etag}`;
  throw new HubError(
    `download of ${file} is corrupted (${found}, from ${request.location}); it was deleted and not added to the cache. Run again to download it anew`,
  );
}
