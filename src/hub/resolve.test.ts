import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { DEMO_MODEL, DEMO_MODEL_ALIAS } from "../demo-model.js";
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
    await assert.rejects(resolveModelPath(path.join(dir, "missing")), /no such model folder: .*missing/);
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

test("a spec that looks like a path is 'no such model folder', never a hub look-up; org/name goes to the hub", async () => {
  const cwd = process.cwd();
  const dir = mkdtempSync(path.join(os.tmpdir(), "awq-resolve-"));
  try {
    process.chdir(dir);
    mkdirSync(path.join(dir, "models"));
    for (const spec of ["models/nope", "./nope", "../nope", "a/b/c", "nope", "/abs/nope"]) {
      await assert.rejects(resolveModelPath(spec), /^HubError: no such model folder: /, spec);
    }
    await assert.rejects(
      resolveModelPath("models/nope"),
      /"models" is a folder here, so this is read as a path/,
    );
    // org/name (no folder "org" here) goes to the hub (offline here: the cache's answer, not a folder's).
    const cache = mkdtempSync(path.join(os.tmpdir(), "awq-resolve-cache-"));
    const hubCache = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cache;
    try {
      await assert.rejects(resolveModelPath("org/name", { quiet: true, offline: true }), (err: Error) => {
        assert.doesNotMatch(err.message, /no such model folder/);
        assert.match(err.message, /org\/name/);
        return true;
      });
    } finally {
      if (hubCache === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = hubCache;
      rmSync(cache, { recursive: true, force: true });
    }
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('"demo" is the demo model shipped in the package, unless a folder named demo is here', async () => {
  assert.equal(await resolveModelPath(DEMO_MODEL_ALIAS), DEMO_MODEL);
  assert.ok(existsSync(path.join(DEMO_MODEL, "config.json")), `${DEMO_MODEL}/config.json`);
  const cwd = process.cwd();
  const dir = mkdtempSync(path.join(os.tmpdir(), "awq-resolve-"));
  try {
    process.chdir(dir);
    mkdirSync(path.join(dir, "demo"));
    assert.equal(await resolveModelPath("demo"), path.join(dir, "demo"));
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
});
