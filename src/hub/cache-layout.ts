/**
 * The on-disk cache layout of Python's huggingface_hub, so either tool reuses the other's downloads:
 *   <cache>/models--org--name/blobs/<etag>                 file contents, named by etag
 *   <cache>/models--org--name/refs/<revision>              the commit sha a branch or tag pointed to
 *   <cache>/models--org--name/snapshots/<commit>/<file>    relative symlink to ../../blobs/<etag>
 */
import { mkdir, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

export const COMMIT_SHA = /^[0-9a-f]{40}$/;

export class RepoCache {
  /** Folder of this repo inside the cache: `models--org--name`. */
  readonly repoDir: string;

  constructor(
    readonly cacheDir: string,
    readonly repoId: string,
  ) {
    this.repoDir = path.join(cacheDir, `models--${repoId.split("/").join("--")}`);
  }

  get blobsDir(): string {
    return path.join(this.repoDir, "blobs");
  }

  /** Where our per-blob lock files go (beside Python's own `.locks/<repo>` folder). */
  get locksDir(): string {
    return path.join(this.cacheDir, ".locks", path.basename(this.repoDir));
  }

  blobPath(etag: string): string {
    return path.join(this.blobsDir, etag);
  }

  incompletePath(etag: string): string {
    return `${this.blobPath(etag)}.incomplete`;
  }

  lockPath(etag: string): string {
    return path.join(this.locksDir, `${etag}.awq-lock`);
  }

  snapshotDir(commit: string): string {
    return path.join(this.repoDir, "snapshots", commit);
  }

  snapshotFilePath(commit: string, file: string): string {
    return path.join(this.snapshotDir(commit), ...file.split("/"));
  }

  refPath(revision: string): string {
    return path.join(this.repoDir, "refs", ...revision.split("/"));
  }

  /** The commit a revision points to in the cache: the revision itself if it is a cached commit sha. */
  async readRef(revision: string): Promise<string | undefined> {
    if (COMMIT_SHA.test(revision)) {
      const cached = await stat(this.snapshotDir(revision)).catch(() => undefined);
      if (cached?.isDirectory()) return revision;
    }
    const ref = await readFile(this.refPath(revision), "utf8").catch(() => undefined);
    const commit = ref?.trim();
    return commit && COMMIT_SHA.test(commit) ? commit : undefined;
  }

  /** Records which commit a branch or tag points to (Python writes the sha with no newline). */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const refPath = this.refPath(revision);
    await mkdir(path.dirname(refPath), { recursive: true });
    const current = await readFile(refPath, "utf8").catch(() => undefined);
    if (current !== commit) await writeFile(refPath, commit);
  }

  /** True when the snapshot entry exists and its link resolves to a blob. */
  async hasSnapshotFile(commit: string, file: string): Promise<boolean> {
    const info = await stat(this.snapshotFilePath(commit, file)).catch(() => undefined);
    return info?.isFile() ?? false;
  }

  /** Points snapshots/<commit>/<file> at blobs/<etag> with a relative link, as huggingface_hub does. */
  async linkSnapshotFile(commit: string, file: string, etag: string): Promise<void> {
    const linkPath = this.snapshotFilePath(commit, file);
    await mkdir(path.dirname(linkPath), { recursive: true });
    const target = path.relative(path.dirname(linkPath), this.blobPath(etag));
    const existing = await readlink(linkPath).catch(() => undefined);
    if (existing === target) return;
    await rm(linkPath, { force: true });
    await symlink(target, linkPath).catch(async (err: NodeJS.ErrnoException) => {
      // Another process linked it between our rm and symlink: fine if it points at the same blob.
      if (err.code !== "EEXIST" || (await readlink(linkPath).catch(() => undefined)) !== target) throw err;
    });
  }
}

/** Removes the quotes and weak marker from an ETag header value: `W/"abc"` -> `abc`. */
export function normalizeEtag(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const value = header
    .trim()
    .replace(/^W\//, "")
    .replace(/^"(.*)"$/, "$1");
  return value || undefined;
}
