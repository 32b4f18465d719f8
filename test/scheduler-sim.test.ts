/** `bench/scheduler-sim.ts` runs and tells the two admission rules apart on a cache too small for every client. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "./server-harness.js";

const run = promisify(execFile);

test("scheduler-sim: vLLM's admission preempts on a short cache, the KV room kept does not", async () => {
  const script = path.join(repoRoot, "dist/bench/scheduler-sim.js");
  const args = [
    "--concurrency",
    "16",
    "--prompts",
    "48",
    "--input-len",
    "64",
    "--output-len",
    "32",
    "--blocks",
    "60",
  ];
  const { stdout } = await run(process.execPath, [script, ...args, "--kv-reserve-tokens", "0,256"]);
  const rows = stdout
    .split("\n")
    .filter((l) => /^\| \d/.test(l))
    .map((l) => l.split("|").map((c) => c.trim().replaceAll(",", "")));
  assert.equal(rows.length, 2, stdout);
  const [greedy, reserving] = rows.map((r) => ({ preemptions: Number(r[4]), computed: Number(r[5]) }));
  assert.ok(greedy!.preemptions > 0, stdout);
  assert.equal(reserving!.preemptions, 0, stdout);
  assert.equal(reserving!.computed, 48 * (64 + 31), "every token's KV computed once");
  assert.ok(greedy!.computed > reserving!.computed, stdout);
});

test("scheduler-sim: a bad flag is a clear error", async () => {
  const script = path.join(repoRoot, "dist/bench/scheduler-sim.js");
  await assert.rejects(
    run(process.execPath, [script, "--kv-reserve-tokens", "0,x"]),
    /--kv-reserve-tokens takes integers >= 0, got x/,
  );
});
