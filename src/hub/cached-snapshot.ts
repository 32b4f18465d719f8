/** Finds a complete snapshot of a repo in the cache without touching the network. */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { RepoCache } from "./cache-layout.js";

export type CachedSnapshot = { dir: string; commit: string } | { missing: string };

/** The snapshot folder for `revision` if it holds config.json and every safetensors file it needs. */
export async function findCachedSnapshot(cache: RepoCache, revision: string): Promise<CachedSnapshot> {
  const commit = await cache.readRef(revision);
  if (!commit) return { missing: `no snapshot of ${cache.repoId}@${revision} in ${cache.cacheDir}` };
  const dir = cache.snapshotDir(commit);
  // readdir lists links; a name counts only when its link resolves to a blob.
  const names = await readdir(dir).catch(() => [] as string[]);
  const present = new Set<string>();
  for (const name of names) {
    if (await cache.hasSnapshotFile(commit, name)) present.add(name);
  }
  const lacking: string[] = [];
  if (!present.has("config.json")) lacking.push("config.json");
  const indexName = [...present].find((name) => name.endsWith(".safetensors.index.json"));
  if (indexName) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(await readFile(path.join(dir, indexName), "utf8"));
    } catch (err) {
      return { missing: `${path.join(dir, indexName)} is not valid JSON (${(err as Error).message})` };
    }
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) {
      if (!present.has(shard)) lacking.push(shard);
    }
  } else if (![...present].some((name) => name.endsWith(".safetensors"))) {
    lacking.push("*.safetensors");
  }
  if (lacking.length > 0) {
    return { missing: `the cached snapshot ${dir} lacks ${lacking.join(", ")} (an interrupted download?)` };
  }
  return { dir, commit };
}
