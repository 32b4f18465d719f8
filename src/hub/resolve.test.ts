import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { parseHubId, resolveModelPath } from "./resolve.js";
import { ensureFreeSpace } from "./snapshot-download.js";

test("hub ids: org/name and org/name@revision; paths are not ids", () => {
  assert.deepEqual(parseHubId("TheBloke/OpenOrcaxOpenChat-Preview2-13B-AWQ"), {
    repoId: "TheBloke/OpenOrcaxOpenChat-Preview2-13B-AWQ",
    revision: undefined,
  });
  assert.deepEqual(parseHubId("org/name@refs/pr/3"), { repoId: "org/name", revision: "refs/pr/3" });
  for (const notId of ["./models/x", "/abs/path", "a/b/c", "../up/x", "name", "org/.."]) {
    assert.equal(parseHubId(notId), undefined, notId);
  }
});

test("an existing folder resolves to its absolute path without the network", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "awq-resolve-"));
  try {
    assert.equal(await resolveModelPath(path.relative(process.cwd(), dir)), dir);
    writeFileSync(path.join(dir, "file"), "");
    await assert.rejects(resolveModelPath(path.join(dir, "file")), /is a file; --model takes a model folder/);
    await assert.rejects(
      resolveModelPath(path.join(dir, "missing")),
      /model folder ".*missing" does not exist/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the free-space check names the bytes needed", async () => {
  await ensureFreeSpace(os.tmpdir(), 1, "org/small");
  await assert.rejects(
    ensureFreeSpace(os.tmpdir(), 5e18, "org/huge"),
    /not enough disk space for org\/huge: 5000000000000000000 bytes \(5000000\.0 TB\) are needed in .* HF_HUB_CACHE/,
  );
});
