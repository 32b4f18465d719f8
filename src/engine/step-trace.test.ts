import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { StepTrace, stepTraceFromEnvironment } from "./step-trace.js";

test("no trace unless AWQ_TRACE_STEPS names a file", () => {
  assert.equal(stepTraceFromEnvironment({}), null);
  assert.equal(stepTraceFromEnvironment({ AWQ_TRACE_STEPS: "" }), null);
});

test("a trace file that cannot be opened is an error naming the variable and the path", () => {
  assert.throws(
    () => stepTraceFromEnvironment({ AWQ_TRACE_STEPS: "/nonexistent-dir/trace.jsonl" }),
    /AWQ_TRACE_STEPS=\/nonexistent-dir\/trace\.jsonl: cannot open the trace file/,
  );
});

test("the trace writes one JSON line per event, steps numbered from 1, times rising", () => {
  const path = join(mkdtempSync(join(tmpdir(), "awq-trace-")), "trace.jsonl");
  const trace = new StepTrace(path);
  trace.add("cmpl-1", 512);
  const n = trace.step(false, { seqs: 1, prefill: 512, decode: 0, waiting: 2 });
  trace.done(n);
  const m = trace.step(true, { seqs: 1, prefill: 0, decode: 1, waiting: 0 });
  trace.close();
  trace.done(m); // after close: dropped, not thrown
  const lines = readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map(({ t: _t, ...rest }) => rest),
    [
      { ev: "add", id: "cmpl-1", prompt: 512 },
      { ev: "step", n: 1, chained: false, seqs: 1, prefill: 512, decode: 0, waiting: 2 },
      { ev: "done", n: 1 },
      { ev: "step", n: 2, chained: true, seqs: 1, prefill: 0, decode: 1, waiting: 0 },
    ],
  );
  for (let i = 1; i < lines.length; i++) assert.ok(lines[i].t >= lines[i - 1].t);
});
