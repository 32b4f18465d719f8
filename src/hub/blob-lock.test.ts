import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { acquireBlobLock } from "./blob-lock.js";

function withDir(body: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "awq-lock-"));
    try {
      await body(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  "a second holder waits until the first releases",
  withDir(async (dir) => {
    const lockPath = path.join(dir, "sub", "blob.awq-lock");
    const first = await acquireBlobLock(lockPath);
    let waitedFor: string | undefined;
    let secondHeld = false;
    const second = acquireBlobLock(lockPath, { pollMs: 10, onWait: (holder) => (waitedFor = holder) }).then(
      (lock) => {
        secondHeld = true;
        return lock;
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(secondHeld, false);
    assert.match(waitedFor ?? "", new RegExp(`process ${process.pid}`));
    await first.release();
    await (await second).release();
    assert.equal(existsSync(lockPath), false);
  }),
);

test(
  "a lock left by a dead process is taken over at once",
  withDir(async (dir) => {
    const lockPath = path.join(dir, "blob.awq-lock");
    const dead = spawnSync(process.execPath, [
      "-e",
      "process.stdout.write(String(process.pid))",
    ]).stdout.toString();
    writeFileSync(lockPath, JSON.stringify({ pid: Number(dead), host: os.hostname(), token: "x" }));
    const lock = await acquireBlobLock(lockPath, { staleMs: 60_000 });
    assert.equal(JSON.parse(readFileSync(lockPath, "utf8")).pid, process.pid);
    await lock.release();
  }),
);

test(
  "a lock nobody touched for staleMs is taken over; a fresh one is not",
  withDir(async (dir) => {
    const lockPath = path.join(dir, "blob.awq-lock");
    writeFileSync(lockPath, JSON.stringify({ pid: 1, host: "another-host", token: "x" }));
    const old = new Date(Date.now() - 120_000);
    utimesSync(lockPath, old, old);
    const lock = await acquireBlobLock(lockPath, { staleMs: 60_000 });
    await lock.release();

    writeFileSync(lockPath, JSON.stringify({ pid: 1, host: "another-host", token: "y" }));
    const attempt = acquireBlobLock(lockPath, { staleMs: 60_000, pollMs: 10 });
    const outcome = await Promise.race([
      attempt.then(() => "acquired"),
      new Promise((r) => setTimeout(r, 150, "waiting")),
    ]);
    assert.equal(outcome, "waiting");
    rmSync(lockPath); // the other host finishes
    await (await attempt).release();
  }),
);
