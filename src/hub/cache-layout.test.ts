import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { normalizeEtag, RepoCache } from "./cache-layout.js";

test("paths match huggingface_hub's layout", () => {
  const cache = new RepoCache("/c", "TheBloke/Model-AWQ");
  assert.equal(cache.repoDir, "/c/models--TheBloke--Model-AWQ");
  assert.equal(cache.blobPath("abc"), "/c/models--TheBloke--Model-AWQ/blobs/abc");
  assert.equal(cache.incompletePath("abc"), "/c/models--TheBloke--Model-AWQ/blobs/abc.incomplete");
  assert.equal(cache.refPath("refs/pr/1"), "/c/models--TheBloke--Model-AWQ/refs/refs/pr/1");
  assert.equal(
    cache.snapshotFilePath("c0ffee", "a/b.json"),
    "/c/models--TheBloke--Model-AWQ/snapshots/c0ffee/a/b.json",
  );
});

test("snapshot files are relative links into blobs; refs hold the bare commit", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "awq-cache-"));
  try {
    const cache = new RepoCache(dir, "org/name");
    const commit = "a".repeat(40);
    mkdirSync(cache.blobsDir, { recursive: true });
    writeFileSync(cache.blobPath("e1"), "hello");
    assert.equal(await cache.hasSnapshotFile(commit, "sub/x.json"), false);
    await cache.linkSnapshotFile(commit, "sub/x.json", "e1");
    await cache.linkSnapshotFile(commit, "sub/x.json", "e1"); // idempotent
    assert.equal(readlinkSync(cache.snapshotFilePath(commit, "sub/x.json")), "../../../blobs/e1");
    assert.equal(readFileSync(cache.snapshotFilePath(commit, "sub/x.json"), "utf8"), "hello");
    assert.equal(await cache.hasSnapshotFile(commit, "sub/x.json"), true);
    assert.equal(await cache.readRef("main"), undefined);
    await cache.writeRef("main", commit);
    assert.equal(readFileSync(cache.refPath("main"), "utf8"), commit);
    assert.equal(await cache.readRef("main"), commit);
    assert.equal(await cache.readRef(commit), commit, "a cached commit sha is its own ref");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("etags lose quotes and the weak marker", () => {
  assert.equal(normalizeEtag('"abc"'), "abc");
  assert.equal(normalizeEtag('W/"abc"'), "abc");
  assert.equal(normalizeEtag(null), undefined);
});
