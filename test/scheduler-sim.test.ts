/** `bench/scheduler-sim.ts` runs and tells the two admission rules apart on a cache too small for every client. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "./server-harness.js";

const run = promisify(execFile);

/** The simulator's table as one record a row, keyed by the header's cells (numbers without their commas). */
function tableRows(stdout: string): Record<string, string>[] {
  const lines = stdout.split("\n").filter((l) => l.startsWith("| "));
  const cells = (l: string) =>
    l
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim().replaceAll(",", ""));
  const header = cells(lines[0] ?? "");
  return lines
    .slice(1)
    .filter((l) => /^\| \d/.test(l))
    .map((l) => Object.fromEntries(cells(l).map((c, i) => [header[i], c])));
}

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
  const rows = tableRows(stdout);
  assert.equal(rows.length, 2, stdout);
  const [greedy, reserving] = rows.map((r) => ({
    preemptions: Number(r.preemptions),
    computed: Number(r["tokens computed"]),
  }));
  assert.ok(greedy!.preemptions > 0, stdout);
  assert.equal(reserving!.preemptions, 0, stdout);
  assert.equal(reserving!.computed, 48 * (64 + 31), "every token's KV computed once");
  assert.ok(greedy!.computed > reserving!.computed, stdout);
});

test("scheduler-sim: a budget of one prompt staggers the arrivals: lower TTFT, higher TPOT than 8192 at concurrency 16", async () => {
  const script = path.join(repoRoot, "dist/bench/scheduler-sim.js");
  const { stdout } = await run(process.execPath, [
    script,
    ...["--concurrency", "16", "--prompts", "64", "--input-len", "513", "--output-len", "128"],
    ...["--max-num-batched-tokens", "8192,640", "--kv-reserve-tokens", "0", "--turnaround-ms", "3"],
    ...["--base-ms", "3.46", "--decode-ms", "0.14", "--context-ms", "0", "--prefill-base-ms", "1"],
  ]);
  const rows = tableRows(stdout);
  assert.deepEqual(
    rows.map((r) => r["--max-num-batched-tokens"]),
    ["8192", "640"],
    stdout,
  );
  const [wave, staggered] = rows.map((r) => ({
    tpot: Number.parseFloat(r["TPOT p50"]!),
    ttft: Number.parseFloat(r["TTFT p50"]!),
    computed: Number(r["tokens computed"]),
  }));
  // 16 requests arrive at once: with 8192 they are prefilled together (a TTFT of ~16 x 513 tokens of prefill) and
  // decode in lock-step; with 640 each step takes one prompt beside the decodes of the others.
  assert.ok(wave!.ttft > 300 && staggered!.ttft < 150, stdout);
  assert.ok(wave!.tpot < 6.5 && staggered!.tpot > 7, stdout);
  for (const r of [wave!, staggered!])
    assert.equal(r.computed, 64 * (513 + 127), "every token's KV computed once");
});

test("scheduler-sim: a bad flag is a clear error", async () => {
  const script = path.join(repoRoot, "dist/bench/scheduler-sim.js");
  await assert.rejects(
    run(process.execPath, [script, "--kv-reserve-tokens", "0,x"]),
    /--kv-reserve-tokens takes integers >= 0, got x/,
  );
});
