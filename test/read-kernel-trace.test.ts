/**
 * scripts/read-kernel-trace.mjs (the summary of native/kernel-trace's CUPTI records): graph launches grouped by
 * correlation id, the first launch of a graph left out, kernels with programmatic dependent launch (starting before
 * the one before ends) charged only from that kernel's end, idle gaps counted apart, kernels told apart by grid.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const script = path.join(repoRoot, "scripts/read-kernel-trace.mjs");

type Rec = { n: string; s: number; e: number; g: number; c: number; grid: number[] };
const gemv = "void awqk::(anonymous namespace)::awq_gemv_kernel<1, 2, 4, false>(__half const*, int, __half*)";
const norm = "void awq::(anonymous namespace)::addRmsNormKernel(float*, __half const*)";

/** One launch of graph 5 at time t0 (ns): gemv (grid 480) 4 us, norm started 1 us early (PDL) ending 2 us after
 * the gemv, a 1 us idle gap, gemv (grid 320) 3 us. Span 10 us: shares 4 + 2 + 3, idle 1. */
function launch(c: number, t0: number): Rec[] {
  return [
    { n: gemv, s: t0, e: t0 + 4000, g: 5, c, grid: [480, 1, 1] },
    { n: norm, s: t0 + 3000, e: t0 + 6000, g: 5, c, grid: [1, 1, 1] },
    { n: gemv, s: t0 + 7000, e: t0 + 10000, g: 5, c, grid: [320, 1, 1] },
  ];
}

test("read-kernel-trace: each kernel's share of the step, PDL waits and idle gaps apart", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "kernel-trace-"));
  try {
    // The first launch (an upload-slowed one, 3x as long) must not count; three steady launches follow.
    const first = launch(100, 0).map((r) => ({ ...r, e: r.s + 3 * (r.e - r.s) }));
    const recs = [...first, ...launch(101, 50_000), ...launch(102, 80_000), ...launch(103, 110_000)];
    recs.push({ n: "void eagerKernel()", s: 1, e: 2, g: 0, c: 1, grid: [1, 1, 1] });
    const file = path.join(dir, "trace.jsonl");
    writeFileSync(
      file,
      `${recs.map((r) => JSON.stringify({ ...r, st: 7, block: [256, 1, 1], smem: 0 })).join("\n")}\n`,
    );
    const run = spawnSync(process.execPath, [script, file, "--min-launches", "2"], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    const out = run.stdout;
    assert.match(out, /graph 5: 4 launches, 3 kernels a launch; median span 10\.0 us, idle inside 1\.0 us/);
    assert.match(
      out,
      /^\s+4\.0 \|\s+40\.0% \|\s+1 \|\s+4\.00 \|\s+4\.0 \| awq_gemv_kernel<1, 2, 4, false> grid 480x1x1$/m,
    );
    assert.match(
      out,
      /^\s+3\.0 \|\s+30\.0% \|\s+1 \|\s+3\.00 \|\s+3\.0 \| awq_gemv_kernel<1, 2, 4, false> grid 320x1x1$/m,
    );
    // The norm ran 3 us start to end but waited 1 us of it on the gemv: its share is 2 us.
    assert.match(out, /^\s+2\.0 \|\s+20\.0% \|\s+1 \|\s+2\.00 \|\s+3\.0 \| addRmsNormKernel grid 1x1x1$/m);
    assert.match(out, /13 kernel records, 12 from graphs, 1 launched eagerly/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("read-kernel-trace: a missing file argument is a usage error, a torn last line is skipped", () => {
  const usage = spawnSync(process.execPath, [script], { encoding: "utf8" });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /usage: node scripts\/read-kernel-trace\.mjs TRACE\.jsonl/);
  const dir = mkdtempSync(path.join(tmpdir(), "kernel-trace-"));
  try {
    const file = path.join(dir, "trace.jsonl");
    writeFileSync(
      file,
      `${JSON.stringify({ ...launch(1, 0)[0], st: 7, block: [1, 1, 1], smem: 0 })}\n{"n":"torn`,
    );
    const run = spawnSync(process.execPath, [script, file], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /trace\.jsonl:2: not a JSON line \(skipped\)/);
    assert.match(run.stdout, /no graph launched 3 times or more/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
