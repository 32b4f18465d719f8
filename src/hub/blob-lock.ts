/**
 * One lock file per blob, so two processes never write the same `.incomplete` file.
 * The lock is created with O_EXCL (`wx`) and holds `{ pid, host }`; its owner touches it every few seconds.
 * A lock is stale when its owner is a dead process on this host, or it has not been touched for `staleMs`
 * (a crashed owner elsewhere, e.g. a cache on a network disk).
 */
import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface LockOptions {
  /** A lock untouched this long is taken over. */
  staleMs?: number;
  pollMs?: number;
  /** Called once when another live process holds the lock and we start waiting. */
  onWait?: (holder: string) => void;
  /** Gives up waiting. */
  signal?: AbortSignal;
}

export interface BlobLock {
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  host: string;
  token: string;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists but belongs to another user
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(text) as LockOwner;
    return typeof owner.pid === "number" && typeof owner.host === "string" ? owner : undefined;
  } catch {
    return undefined; // being written right now, or not ours
  }
}

/** Why an existing lock may be taken over, or undefined while its owner looks alive. */
async function staleReason(lockPath: string, text: string, staleMs: number): Promise<string | undefined> {
  const owner = parseOwner(text);
  if (owner && owner.host === os.hostname() && owner.pid !== process.pid && !isProcessAlive(owner.pid)) {
    return `process ${owner.pid} is gone`;
  }
  const info = await stat(lockPath).catch(() => undefined);
  if (info && Date.now() - info.mtimeMs > staleMs) return `untouched for ${Math.round(staleMs / 1000)} s`;
  return undefined;
}

/** Moves a stale lock aside atomically, so that two waiters never both delete one fresh lock. */
async function removeStaleLock(lockPath: string, staleText: string): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await rename(lockPath, aside);
  } catch {
    return; // someone else moved it first
  }
  const movedText = await readFile(aside, "utf8").catch(() => "");
  // A new owner replaced the stale lock between our read and rename: put its lock back.
  if (movedText !== staleText) await link(aside, lockPath).catch(() => undefined);
  await rm(aside, { force: true });
}

export async function acquireBlobLock(lockPath: string, opts: LockOptions = {}): Promise<BlobLock> {
  const staleMs = opts.staleMs ?? 30_000;
  const pollMs = opts.pollMs ?? 200;
  const owner: LockOwner = { pid: process.pid, host: os.hostname(), token: randomBytes(8).toString("hex") };
  const ownText = JSON.stringify(owner);
  await mkdir(path.dirname(lockPath), { recursive: true });
  let waiting = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      await writeFile(lockPath, ownText, { flag: "wx" });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const text = await readFile(lockPath, "utf8").catch(() => undefined);
    if (text === undefined) continue; // released between our attempts
    if (await staleReason(lockPath, text, staleMs)) {
      await removeStaleLock(lockPath, text);
      continue;
    }
    if (!waiting) {
      waiting = true;
      const holder = parseOwner(text);
      opts.onWait?.(holder ? `process ${holder.pid} on ${holder.host}` : "another process");
    }
    await sleep(pollMs);
  }
  // Keep the lock fresh while a long download runs, so waiters never mistake it for a stale one.
  const heartbeat = setInterval(
    () => {
      const now = new Date();
      utimes(lockPath, now, now).catch(() => undefined);
    },
    Math.max(1000, staleMs / 4),
  );
  heartbeat.unref();
  return {
    async release() {
      clearInterval(heartbeat);
      const text = await readFile(lockPath, "utf8").catch(() => undefined);
      if (text === ownText) await rm(lockPath, { force: true });
    },
  };
}
