/**
 * The grammar workers on the demo model's vocabulary: rows written into shared memory, accepts carried with
 * the next fill, termination on an allowed stop token, allowed_token_ids ANDed, bad words, grammar errors
 * across the thread boundary, and a new compile placed on another worker than live matchers (so it does not
 * hold up their masks), with the event loop free meanwhile.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { ConstraintFactory } from "./engine-constraints.js";
import { GrammarError, vocabInfoFor } from "./grammar-engine.js";
import {
  type FillJob,
  GrammarPool,
  type GrammarPoolOptions,
  type GrammarWorker,
  type RemoteMatcher,
} from "./grammar-pool.js";
import type { WorkerFault } from "./grammar-protocol.js";
import { maskAllows, type SequenceConstraint } from "./sequence-constraint.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
const EOT = 32000;
let tokenizer: Tokenizer;
let factory: ConstraintFactory;

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
  factory = new ConstraintFactory(tokenizer, 32002, { maxWorkers: 2 });
});
after(async () => {
  await factory?.close();
});

const params = (over: Partial<Parameters<ConstraintFactory["create"]>[0]>) => ({
  structuredOutput: null,
  allowedTokenIds: null,
  badWords: [],
  ...over,
});

/** One step for one sequence: its row, filled by the worker. */
async function step(c: SequenceConstraint): Promise<Int32Array> {
  const pending = factory.startStepMasks([{ constraint: c, sample: true }]);
  assert.ok(pending !== null);
  await pending.masksReady();
  await pending.done;
  assert.equal(c.failure, null);
  return pending.masks.tokenMask.slice(0, factory.maskWords);
}

function allowedIds(row: Int32Array): number[] {
  const ids: number[] = [];
  for (let t = 0; t < 32002; t++) if (maskAllows(row, t)) ids.push(t);
  return ids;
}

test("a choice grammar through a worker: rows, accepts, the stop token ends it; allowed_token_ids ANDed", async () => {
  const yes = [..."yes"].map((ch) => tokenizer.tokenToId(ch)!); // one character a token
  const no = [..."no"].map((ch) => tokenizer.tokenToId(ch)!);
  const c = await factory.create(
    params({ structuredOutput: { type: "choice", choices: ["yes", "no"] }, allowedTokenIds: [yes[0]!, EOT] }),
  );
  assert.equal(c.maskBeforeLogprobs, true);
  assert.deepEqual(allowedIds(await step(c)), [yes[0]]);
  assert.equal(c.accept(no[0]!), false, "a token outside the row is refused");

  const d = await factory.create(params({ structuredOutput: { type: "choice", choices: ["yes", "no"] } }));
  let row = await step(d);
  assert.ok(maskAllows(row, yes[0]!) && maskAllows(row, no[0]!) && !maskAllows(row, EOT));
  for (const id of yes) {
    assert.equal(d.accept(id), true);
    assert.equal(d.terminated, false);
    row = await step(d); // the accept travels with this fill
  }
  assert.deepEqual(allowedIds(row), [EOT], "complete: only the stop token");
  assert.equal(d.accept(EOT), true);
  assert.equal(d.terminated, true);
  c.dispose();
  d.dispose();

  const only = await factory.create(params({ allowedTokenIds: [5, 40] }));
  assert.equal(only.hasGrammar, false);
  const fixed = await step(only);
  assert.deepEqual(allowedIds(fixed), [5, 40]);
  assert.equal(only.maskBeforeLogprobs, false);

  const bw = await factory.create(params({ badWords: ["zebra"] }));
  assert.equal(bw.hasMask, false);
  const z = tokenizer.encode("zebra", { addBos: false });
  assert.deepEqual(bw.bannedTokenIds(z.slice(0, -1)), [z.at(-1)]);
});

test("a grammar error crosses the thread boundary as a GrammarError with XGrammar's reason", async () => {
  await assert.rejects(
    factory.compile({ type: "grammar", ebnf: "root ::= missing_rule" }),
    (err: unknown) => err instanceof GrammarError && /missing_rule/.test(err.message),
  );
  await assert.rejects(
    factory.compile({ type: "regex", pattern: "(unclosed" }),
    (err: unknown) => err instanceof GrammarError,
  );
  // The worker still serves valid grammars after an abort in its probe instance.
  await factory.compile({ type: "regex", pattern: "[a-z]{3}" });
});

test("a new schema compiles on another worker than live matchers: their masks and the event loop go on", async (t) => {
  const liveSpec = { type: "regex" as const, pattern: "[0-9]+" };
  const live = await factory.create(params({ structuredOutput: liveSpec }));
  const liveWorker = (await factory.compile(liveSpec)).worker;
  await step(live);
  // A schema big enough that its compile takes a while: free strings of bounded length.
  const properties: Record<string, unknown> = {};
  for (let i = 0; i < 4; i++) properties[`field_${i}`] = { type: "string", maxLength: 20 + i };
  const big = {
    type: "json_schema" as const,
    schema: { type: "object", properties, required: Object.keys(properties) },
  };
  const t0 = performance.now();
  const compiling = factory.compile(big);
  let loopLateMs = 0;
  let fillMs = 0;
  let fills = 0;
  let done = false;
  compiling.finally(() => {
    done = true;
  });
  const digit = tokenizer.tokenToId("7")!;
  while (!done) {
    const tick = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 5));
    loopLateMs = Math.max(loopLateMs, performance.now() - tick - 5);
    assert.equal(live.accept(digit), true);
    const f0 = performance.now();
    await step(live);
    fillMs = Math.max(fillMs, performance.now() - f0);
    fills++;
  }
  const compiled = await compiling;
  const compileMs = performance.now() - t0;
  live.dispose();
  t.diagnostic(
    `compile ${compileMs.toFixed(0)} ms (with a worker start); ${fills} fills, worst ${fillMs.toFixed(1)} ms; ` +
      `event loop worst ${loopLateMs.toFixed(1)} ms late`,
  );
  assert.notEqual(compiled.worker, liveWorker, "the compile went to another worker than the live matcher's");
  assert.ok(compileMs > 200, `the compile took ${compileMs.toFixed(0)} ms: long enough to test anything`);
  assert.ok(fills >= 5, `${fills} fills while it compiled`);
  // On a busy 2-core machine the OS may pause a thread for a while; a fill queued behind the compile would
  // wait for all of it.
  assert.ok(fillMs < Math.max(300, compileMs / 4), `a fill took ${fillMs.toFixed(0)} ms during the compile`);
  assert.ok(loopLateMs < 300, `the event loop was ${loopLateMs.toFixed(0)} ms late during the compile`);
});

test("many rows of one grammar: a replica is compiled on another worker and matchers move there, state intact", async (t) => {
  const spread = new ConstraintFactory(tokenizer, 32002, { maxWorkers: 2 });
  try {
    const spec = { type: "regex" as const, pattern: "(ab)+" };
    const a = tokenizer.tokenToId("a")!;
    const b = tokenizer.tokenToId("b")!;
    const seqs = await Promise.all(
      Array.from({ length: 20 }, () => spread.create(params({ structuredOutput: spec }))),
    );
    const home = seqs[0]!.remoteMatcher!.worker;
    assert.ok(
      seqs.every((c) => c.remoteMatcher!.worker === home),
      "all start on the grammar's worker",
    );
    let moved = false;
    for (let stepNo = 0; stepNo < 400 && !moved; stepNo++) {
      const pending = spread.startStepMasks(seqs.map((constraint) => ({ constraint, sample: true })));
      assert.ok(pending !== null);
      await pending.done;
      const words = spread.maskWords;
      const next = stepNo % 2 === 0 ? a : b; // the grammar's only continuation (EOT too after "ab")
      seqs.forEach((c, i) => {
        const row = pending.masks.tokenMask.subarray(i * words, (i + 1) * words);
        assert.equal(c.failure, null);
        assert.ok(maskAllows(row, next), `step ${stepNo}, sequence ${i}: next token allowed`);
        assert.ok(
          !maskAllows(row, next === a ? b : a),
          `step ${stepNo}, sequence ${i}: the other one masked`,
        );
        assert.equal(maskAllows(row, EOT), stepNo > 0 && stepNo % 2 === 0);
        assert.equal(c.accept(next), true);
      });
      // Moves finish in the background (a copy is made on the replica while the original fills on).
      const counts = new Map<unknown, number>();
      for (const c of seqs)
        counts.set(c.remoteMatcher!.worker, (counts.get(c.remoteMatcher!.worker) ?? 0) + 1);
      moved = [...counts.values()].sort().join() === "10,10";
      if (!moved) await new Promise((resolve) => setTimeout(resolve, 20));
      if (moved) t.diagnostic(`rows spread evenly over 2 workers after ${stepNo + 1} steps`);
    }
    assert.ok(moved, "the rows were spread over two workers");
    // After the move the masks still follow each sequence's own history (checked in the loop above, and here).
    const pending = spread.startStepMasks(seqs.map((constraint) => ({ constraint, sample: true })));
    await pending!.done;
    for (const c of seqs) assert.equal(c.failure, null);
    for (const c of seqs) c.dispose();
  } finally {
    await spread.close();
  }
});

test("a grammar with many matchers is compiled on a second worker before any step; new matchers go there", async () => {
  const ahead = new ConstraintFactory(tokenizer, 32002, { maxWorkers: 2 });
  try {
    const spec = { type: "regex" as const, pattern: "(ba)+" };
    const first = await Promise.all(
      Array.from({ length: 12 }, () => ahead.create(params({ structuredOutput: spec }))),
    );
    const grammar = first[0]!.remoteMatcher!.grammar;
    const deadline = Date.now() + 30_000;
    while (grammar.replicas.length < 2 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(grammar.replicas.length, 2, "a replica was compiled without a step");
    const later = await Promise.all(
      Array.from({ length: 6 }, () => ahead.create(params({ structuredOutput: spec }))),
    );
    assert.ok(
      later.every((c) => c.remoteMatcher!.worker === grammar.replicas[1]),
      "new matchers go to the replica with fewer matchers",
    );
    const pending = ahead.startStepMasks(
      [...first, ...later].map((constraint) => ({ constraint, sample: true })),
    );
    await pending!.done;
    const b = tokenizer.tokenToId("b")!;
    for (const [i, c] of [...first, ...later].entries()) {
      assert.equal(c.failure, null);
      const row = pending!.masks.tokenMask.subarray(i * ahead.maskWords, (i + 1) * ahead.maskWords);
      assert.ok(maskAllows(row, b), `sequence ${i}: "b" allowed`);
    }
    for (const c of [...first, ...later]) c.dispose();
  } finally {
    await ahead.close();
  }
});

test("a matcher is returned before its worker made it; one the worker cannot make fails its first fill, with the reason", async () => {
  const pool = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 1 });
  try {
    const grammar = await pool.compile({ type: "regex", pattern: "x+" });
    const good = pool.newMatcher(grammar);
    const bad = pool.newMatcher({ ...grammar, key: "not-compiled-anywhere" });
    const mask = new SharedArrayBuffer(2 * pool.maskWords * 4);
    const result = await pool.fill(mask, [
      { matcher: good, row: 0, accepts: [] },
      { matcher: bad, row: 1, accepts: [] },
    ]);
    assert.deepEqual([...result.rejected], [bad.id]);
    assert.match(bad.error?.message ?? "", /is not compiled here/);
    assert.equal(good.error, null);
    const row = new Int32Array(mask, 0, pool.maskWords);
    assert.ok(maskAllows(row, tokenizer.tokenToId("x")!));
  } finally {
    await pool.close();
  }
});

test("a real XGrammar abort while a row is filled (a mask asked of a terminated matcher): that sequence ends with XGrammar's reason, the worker is retired and replaced, the other rows of the step are filled right (one before the abort, one rebuilt after it), and go on", async () => {
  const pool = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 1 });
  try {
    const grammar = await pool.compile({ type: "regex", pattern: "x+" });
    const x = tokenizer.tokenToId("x")!;
    const before = pool.newMatcher(grammar);
    const bad = pool.newMatcher(grammar);
    const after = pool.newMatcher(grammar);
    const first = before.worker;
    const mask = new SharedArrayBuffer(3 * pool.maskWords * 4);
    // A matcher that accepted the stop token makes XGrammar abort (a failed check) when asked for its next mask.
    const result = await pool.fill(mask, [
      { matcher: before, row: 0, accepts: [x] },
      { matcher: bad, row: 1, accepts: [x, EOT] },
      { matcher: after, row: 2, accepts: [] },
    ]);
    assert.deepEqual([...result.rejected], [bad.id]);
    assert.match(
      bad.error?.message ?? "",
      /terminated after accepting the stop token/,
      "the reason reaches it",
    );
    assert.equal(before.error, null);
    assert.equal(after.error, null);
    assert.match(
      first.retired?.message ?? "",
      /^grammar worker 1 was retired after XGrammar aborted in it \(XGrammar failed while filling the next-token mask of a regex constraint, after 2 output tokens: GrammarMatcher has terminated/,
    );
    assert.equal(first.dead, first.retired);
    assert.equal(before.worker.index, 2, "rebuilt on the fresh worker");
    assert.equal(after.worker.index, 2, "rebuilt on the fresh worker");
    assert.equal(result.workerLost, false);
    const rowAt = (row: number) => new Int32Array(mask, row * pool.maskWords * 4, pool.maskWords);
    assert.ok(maskAllows(rowAt(0), x) && maskAllows(rowAt(0), EOT), "after x: more x or the end");
    assert.ok(maskAllows(rowAt(2), x) && !maskAllows(rowAt(2), EOT), "nothing accepted: x, not the end");
    assert.equal(allowedIds(rowAt(1)).length, 32002, "the failed row allows every token");
    assert.equal(result.fillMs.length, 3, "rows 0 and 1 before the abort, row 2 on the fresh worker");
    // The others go on in the next step, on the fresh worker; the failed matcher stays failed.
    const next = await pool.fill(mask, [
      { matcher: before, row: 0, accepts: [x] },
      { matcher: bad, row: 1, accepts: [] },
      { matcher: after, row: 2, accepts: [x] },
    ]);
    assert.deepEqual([...next.rejected], [bad.id]);
    assert.ok(maskAllows(rowAt(0), EOT) && maskAllows(rowAt(2), EOT) && !maskAllows(rowAt(2), 5));
    assert.equal(pool.workerCount, 1);
    assert.equal(first.matchers, 1, "only the failed matcher is counted on the retired worker");
    pool.disposeMatcher(bad);
    assert.equal(first.matchers, 0);
  } finally {
    await pool.close();
  }
});

test("a grammar whose workers all died is compiled again on the next request, not served from the cache", async () => {
  const pool = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 2, startAll: false });
  try {
    const spec = { type: "regex", pattern: "x+" } as const;
    const first = await pool.compile(spec);
    await first.worker.terminate();
    while (first.worker.dead === null) await new Promise((r) => setTimeout(r, 5));
    const again = await pool.compile(spec);
    assert.equal(again.worker.dead, null, "compiled on a live worker");
    const m = pool.newMatcher(again);
    const mask = new SharedArrayBuffer(pool.maskWords * 4);
    const result = await pool.fill(mask, [{ matcher: m, row: 0, accepts: [] }]);
    assert.deepEqual([...result.rejected], [], m.error?.message ?? "rejected");
    assert.ok(maskAllows(new Int32Array(mask), tokenizer.tokenToId("x")!));
  } finally {
    await pool.close();
  }
});

test("sequences disposed while their matchers move between workers leave no matcher counted anywhere", async () => {
  const spread = new ConstraintFactory(tokenizer, 32002, { maxWorkers: 2 });
  try {
    const spec = { type: "regex" as const, pattern: "(ab)+" };
    const ab = [tokenizer.tokenToId("a")!, tokenizer.tokenToId("b")!];
    let seqs = await Promise.all(
      Array.from({ length: 24 }, () => spread.create(params({ structuredOutput: spec }))),
    );
    const grammar = seqs[0]!.remoteMatcher!.grammar;
    const workersUsed = new Set<unknown>();
    while (grammar.replicas.length < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    for (let stepNo = 0; stepNo < 30; stepNo++) {
      for (const c of seqs) workersUsed.add(c.remoteMatcher!.worker);
      const pending = spread.startStepMasks(seqs.map((constraint) => ({ constraint, sample: true })));
      await pending!.done;
      for (const c of seqs) {
        assert.equal(c.failure, null);
        assert.equal(c.accept(ab[stepNo % 2]!), true);
      }
      // Some go at once, some after their move began; the others go on.
      if (stepNo % 5 === 4) {
        for (const c of seqs.slice(0, 4)) c.dispose();
        seqs = seqs.slice(4);
      }
      if (stepNo % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(workersUsed.size, 2, "matchers moved to the replica");
    for (const c of seqs) c.dispose();
    await new Promise((resolve) => setTimeout(resolve, 300)); // copies still being made are dropped when made
    assert.equal(grammar.matchers, 0);
    for (const w of grammar.replicas) assert.equal(w.matchers, 0);
  } finally {
    await spread.close();
  }
});

test("a schema pushed out of the cache while compiling and asked for again keeps making matchers", async () => {
  const pool = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 1, cacheSize: 1 });
  try {
    const a = { type: "regex", pattern: "x+" } as const;
    const b = { type: "regex", pattern: "y+" } as const;
    const first = pool.compile(a);
    const other = pool.compile(b); // pushes `a` out while it compiles
    const again = pool.compile(a); // compiled anew (and pushes `b` out)
    await Promise.all([first, other]);
    const grammar = await again;
    const m = pool.newMatcher(grammar);
    const mask = new SharedArrayBuffer(pool.maskWords * 4);
    const result = await pool.fill(mask, [{ matcher: m, row: 0, accepts: [] }]);
    assert.deepEqual([...result.rejected], [], m.error?.message ?? "rejected");
  } finally {
    await pool.close();
  }
});

test("a request whose grammar is pushed out of the cache while it compiles still gets its matcher", async () => {
  const pool = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 1, cacheSize: 1 });
  try {
    const made = pool.compile({ type: "regex", pattern: "x+" }).then((g) => pool.newMatcher(g));
    await pool.compile({ type: "regex", pattern: "y+" }); // pushes the first out while it compiles
    const m = await made;
    const mask = new SharedArrayBuffer(pool.maskWords * 4);
    const result = await pool.fill(mask, [{ matcher: m, row: 0, accepts: [] }]);
    assert.deepEqual([...result.rejected], [], m.error?.message ?? "rejected");
    assert.ok(maskAllows(new Int32Array(mask), tokenizer.tokenToId("x")!));
  } finally {
    await pool.close();
  }
});

/** A pool of real workers that inject `fault` on the rows of grammars whose key contains "faultmarker". */
async function faultyPool(
  kind: WorkerFault["kind"],
  opts: Omit<GrammarPoolOptions, "testFault"> = {},
  during: WorkerFault["during"] = "fill",
): Promise<GrammarPool> {
  return new GrammarPool(await vocabInfoFor(tokenizer, 32002), {
    startAll: false,
    ...opts,
    testFault: { kind, marker: "faultmarker", during },
  });
}

const rowOf = (pool: GrammarPool, mask: SharedArrayBuffer, row: number) =>
  new Int32Array(mask, row * pool.maskWords * 4, pool.maskWords);

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("a fill that never answers: the step ends by the deadline, that worker's rows fail naming it, the other worker's rows are right, a fresh worker serves later fills", {
  timeout: 30_000,
}, async (t) => {
  const pool = await faultyPool("hang", { maxWorkers: 2, fillTimeoutMs: 300 });
  try {
    const x = tokenizer.tokenToId("x")!;
    const y = tokenizer.tokenToId("y")!;
    const healthy = await pool.compile({ type: "regex", pattern: "x+" });
    const a1 = pool.newMatcher(healthy);
    const a2 = pool.newMatcher(healthy);
    // Worker 1 has live matchers: the next grammar goes to a second worker, and a third to the less busy one.
    const hanging = await pool.compile({ type: "regex", pattern: "(faultmarker)?y+" });
    const b = pool.newMatcher(hanging);
    const other = await pool.compile({ type: "regex", pattern: "y+" });
    const c = pool.newMatcher(other);
    assert.equal(healthy.worker.index, 1);
    assert.equal(hanging.worker.index, 2);
    assert.equal(c.worker, hanging.worker, "a healthy matcher shares the worker that will hang");
    const mask = new SharedArrayBuffer(4 * pool.maskWords * 4);
    const t0 = performance.now();
    const result = await pool.fill(mask, [
      { matcher: a1, row: 0, accepts: [] },
      { matcher: c, row: 1, accepts: [] },
      { matcher: b, row: 2, accepts: [] }, // the worker never answers this fill
      { matcher: a2, row: 3, accepts: [x] },
    ]);
    const ms = performance.now() - t0;
    t.diagnostic(`the fill with a hung worker resolved after ${ms.toFixed(0)} ms (fillTimeoutMs 300)`);
    assert.ok(ms >= 290 && ms < 1500, `resolved after ${ms.toFixed(0)} ms`);
    assert.deepEqual([...result.rejected].sort(), [b.id, c.id].sort(), "the hung worker's rows fail");
    assert.equal(result.workerLost, true);
    for (const m of [b, c]) {
      assert.match(
        m.error?.message ?? "",
        /^grammar worker 2 hung: no progress for 300 ms while filling the masks of 2 sequences \(the grammar pool's fillTimeoutMs, AWQ_GRAMMAR_FILL_TIMEOUT_MS\); it was terminated and replaced: the grammar state of every sequence on it is lost/,
      );
    }
    assert.equal(a1.error, null);
    assert.equal(a2.error, null);
    assert.ok(maskAllows(rowOf(pool, mask, 0), x) && !maskAllows(rowOf(pool, mask, 0), y));
    assert.ok(maskAllows(rowOf(pool, mask, 3), x) && maskAllows(rowOf(pool, mask, 3), EOT), "a2 accepted x");
    assert.equal(allowedIds(rowOf(pool, mask, 1)).length, 32002, "failed rows allow every token");
    assert.ok(hanging.worker.dead !== null);

    // A fresh worker takes the hung one's place; the matchers that lived there fail at once, not after a wait.
    await until("a replacement worker started", () => pool.workerCount === 2);
    const t1 = performance.now();
    const again = await pool.fill(mask, [
      { matcher: a1, row: 0, accepts: [x] },
      { matcher: c, row: 1, accepts: [] },
    ]);
    assert.ok(performance.now() - t1 < 250, "no second wait for the dead worker");
    assert.deepEqual([...again.rejected], [c.id]);
    assert.ok(maskAllows(rowOf(pool, mask, 0), EOT));
    const later = await pool.compile({ type: "regex", pattern: "y+" }); // its only worker died: compiled anew
    assert.equal(later.worker.index, 3, "compiled on the replacement");
    const d = pool.newMatcher(later);
    const fresh = await pool.fill(mask, [{ matcher: d, row: 2, accepts: [] }]);
    assert.deepEqual([...fresh.rejected], [], d.error?.message ?? "rejected");
    assert.equal(fresh.workerLost, false);
    assert.ok(maskAllows(rowOf(pool, mask, 2), y) && !maskAllows(rowOf(pool, mask, 2), x));
  } finally {
    await pool.close();
  }
});

test("a worker spinning forever on its thread is terminated by the deadline and replaced", {
  timeout: 30_000,
}, async () => {
  const pool = await faultyPool("spin", { maxWorkers: 1, fillTimeoutMs: 200 });
  try {
    const spinning = pool.newMatcher(await pool.compile({ type: "regex", pattern: "(faultmarker)?z+" }));
    const mask = new SharedArrayBuffer(pool.maskWords * 4);
    const t0 = performance.now();
    const result = await pool.fill(mask, [{ matcher: spinning, row: 0, accepts: [] }]);
    const ms = performance.now() - t0;
    assert.ok(ms < 1500, `resolved after ${ms.toFixed(0)} ms`);
    assert.deepEqual([...result.rejected], [spinning.id]);
    assert.match(spinning.error?.message ?? "", /grammar worker 1 hung: no progress for 200 ms/);
    // The spinning thread really stops (terminate() interrupts it), and worker 2 serves.
    const m = pool.newMatcher(await pool.compile({ type: "regex", pattern: "z+" }));
    assert.equal(m.worker.index, 2);
    const next = await pool.fill(mask, [{ matcher: m, row: 0, accepts: [] }]);
    assert.deepEqual([...next.rejected], [], m.error?.message ?? "rejected");
    assert.ok(maskAllows(new Int32Array(mask), tokenizer.tokenToId("z")!));
  } finally {
    await pool.close();
  }
});

test("a worker that exits or crashes during a fill fails its rows at once (no wait for the deadline)", {
  timeout: 30_000,
}, async () => {
  for (const [kind, reason] of [
    ["exit", /^grammar worker 1 exited \(code 7\): the grammar state of every sequence on it is lost/],
    ["crash", /^grammar worker 1 failed \(injected grammar worker crash\): the grammar state/],
  ] as const) {
    const pool = await faultyPool(kind, { maxWorkers: 1, fillTimeoutMs: 60_000 });
    try {
      const bad = pool.newMatcher(await pool.compile({ type: "regex", pattern: "(faultmarker)?q+" }));
      const mask = new SharedArrayBuffer(pool.maskWords * 4);
      const t0 = performance.now();
      const result = await pool.fill(mask, [{ matcher: bad, row: 0, accepts: [] }]);
      assert.ok(performance.now() - t0 < 2000, `${kind}: failed promptly`);
      assert.deepEqual([...result.rejected], [bad.id], kind);
      assert.match(bad.error?.message ?? "", reason, kind);
      await until(`${kind}: a replacement started`, () => pool.workerCount === 1);
      const m = pool.newMatcher(await pool.compile({ type: "regex", pattern: "q+" }));
      const next = await pool.fill(mask, [{ matcher: m, row: 0, accepts: [] }]);
      assert.deepEqual([...next.rejected], [], `${kind}: ${m.error?.message}`);
    } finally {
      await pool.close();
    }
  }
});

test("slow but healthy work is not cut: rows that make progress, and a fill queued behind a compile", {
  timeout: 30_000,
}, async (t) => {
  // 8 rows of 100 ms each: 800 ms in all, twice the limit, with a row done every 100 ms.
  const pool = await faultyPool("slow", { maxWorkers: 1, fillTimeoutMs: 400 });
  try {
    const grammar = await pool.compile({ type: "regex", pattern: "(faultmarker)?w+" });
    const ms = Array.from({ length: 8 }, () => pool.newMatcher(grammar));
    const mask = new SharedArrayBuffer(8 * pool.maskWords * 4);
    const t0 = performance.now();
    const result = await pool.fill(
      mask,
      ms.map((matcher, row) => ({ matcher, row, accepts: [] })),
    );
    const fillMs = performance.now() - t0;
    assert.deepEqual([...result.rejected], [], ms.find((m) => m.error)?.error?.message ?? "rejected");
    assert.ok(fillMs > 400, `the fill took ${fillMs.toFixed(0)} ms: longer than the limit`);

    // A compile sent first (500 ms more than its own time): the fill behind it waits for it, and its clock starts
    // when the compile ends.
    const quick = new GrammarPool(await vocabInfoFor(tokenizer, 32002), {
      maxWorkers: 1,
      fillTimeoutMs: 150,
      testFault: { kind: "slow", marker: "faultmarker", during: "compile" },
    });
    try {
      const m = quick.newMatcher(await quick.compile({ type: "regex", pattern: "x+" }));
      const t1 = performance.now();
      const compiling = quick.compile({ type: "regex", pattern: "(faultmarker)?[0-9]+" });
      await until("the compile was sent", () => m.worker.compiling > 0);
      const one = new SharedArrayBuffer(quick.maskWords * 4);
      const filled = await quick.fill(one, [{ matcher: m, row: 0, accepts: [] }]);
      const waited = performance.now() - t1;
      await compiling;
      t.diagnostic(`a fill behind a compile waited ${waited.toFixed(0)} ms (fillTimeoutMs 150)`);
      assert.ok(waited > 450, `the fill waited ${waited.toFixed(0)} ms: for the compile`);
      assert.deepEqual([...filled.rejected], [], m.error?.message ?? "rejected");
    } finally {
      await quick.close();
    }
  } finally {
    await pool.close();
  }
});

test("XGrammar's bare Aborted() becomes the operation, the constraint's kind and XGrammar's reason", {
  timeout: 30_000,
}, async () => {
  const pool = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 1 });
  try {
    const x = tokenizer.tokenToId("x")!;
    const m = pool.newMatcher(await pool.compile({ type: "regex", pattern: "x+" }));
    const mask = new SharedArrayBuffer(pool.maskWords * 4);
    await pool.fill(mask, [{ matcher: m, row: 0, accepts: [x, EOT] }]);
    assert.equal(
      m.error?.message,
      "XGrammar failed while filling the next-token mask of a regex constraint, after 2 output tokens: " +
        "GrammarMatcher has terminated after accepting the stop token, but is trying to find the next token mask",
    );
  } finally {
    await pool.close();
  }
});

test("fill and compile limits: options, else the environment, refused by name when not positive", {
  timeout: 30_000,
}, async () => {
  const vocab = await vocabInfoFor(tokenizer, 32002);
  assert.throws(
    () => new GrammarPool(vocab, { fillTimeoutMs: 0, startAll: false }),
    /GrammarPoolOptions.fillTimeoutMs must be a positive number of ms, got 0/,
  );
  process.env.AWQ_GRAMMAR_FILL_TIMEOUT_MS = "soon";
  try {
    assert.throws(
      () => new GrammarPool(vocab, { startAll: false }),
      /AWQ_GRAMMAR_FILL_TIMEOUT_MS must be a positive number of ms, got soon/,
    );
  } finally {
    delete process.env.AWQ_GRAMMAR_FILL_TIMEOUT_MS;
  }
});

test("a sequence whose copy was made on a worker that then died stays on its own worker", {
  timeout: 30_000,
}, async () => {
  const local = new ConstraintFactory(tokenizer, 32002, { maxWorkers: 2, startAll: false });
  try {
    const spec = { type: "regex" as const, pattern: "(ab)+" };
    const seqs = await Promise.all(
      Array.from({ length: 12 }, () => local.create(params({ structuredOutput: spec }))),
    );
    const grammar = seqs[0]!.remoteMatcher!.grammar;
    await until("a replica was compiled", () => grammar.replicas.length === 2);
    const [home, replica] = grammar.replicas as [GrammarWorker, GrammarWorker];
    const c = seqs.find((s) => s.remoteMatcher!.worker === home)!;
    c.moveTo(replica);
    await until("the copy was made", () => replica.matchers > 0);
    await new Promise((resolve) => setTimeout(resolve, 300)); // its reply is handled
    await replica.terminate();
    await until("the replica's worker is gone", () => replica.dead !== null);
    const pending = local.startStepMasks([{ constraint: c, sample: true }]);
    await pending!.done;
    assert.equal(c.failure, null);
    assert.equal(c.remoteMatcher!.worker, home);
    assert.ok(maskAllows(pending!.masks.tokenMask, tokenizer.tokenToId("a")!));
    for (const s of seqs) s.dispose();
  } finally {
    await local.close();
  }
});

test("a compile that hangs fails after compileTimeoutMs, with the fills queued behind it; a compile queued behind a hung fill is made again on a fresh worker", {
  timeout: 30_000,
}, async () => {
  const vocab = await vocabInfoFor(tokenizer, 32002);
  const stuck = new GrammarPool(vocab, {
    maxWorkers: 1,
    startAll: false,
    compileTimeoutMs: 400,
    testFault: { kind: "hang", marker: "faultmarker", during: "compile" },
  });
  try {
    const live = stuck.newMatcher(await stuck.compile({ type: "regex", pattern: "x+" }));
    const t0 = performance.now();
    const compiling = stuck.compile({ type: "regex", pattern: "(faultmarker)?x+" });
    await until("the compile was sent", () => live.worker.compiling > 0);
    const mask = new SharedArrayBuffer(stuck.maskWords * 4);
    const filled = await stuck.fill(mask, [{ matcher: live, row: 0, accepts: [] }]);
    await assert.rejects(
      compiling,
      /^Error: grammar worker 1 hung: no progress for 400 ms while compiling a grammar \(the grammar pool's compileTimeoutMs, AWQ_GRAMMAR_COMPILE_TIMEOUT_MS\)/,
    );
    assert.ok(performance.now() - t0 < 2000);
    assert.deepEqual([...filled.rejected], [live.id], "the fill behind the compile failed with it");
    assert.match(live.error?.message ?? "", /grammar worker 1 hung/);
  } finally {
    await stuck.close();
  }

  const pool = await faultyPool("hang", { maxWorkers: 1, fillTimeoutMs: 300 });
  try {
    const hanging = pool.newMatcher(await pool.compile({ type: "regex", pattern: "(faultmarker)?y+" }));
    const mask = new SharedArrayBuffer(pool.maskWords * 4);
    const filling = pool.fill(mask, [{ matcher: hanging, row: 0, accepts: [] }]);
    const queued = pool.compile({ type: "regex", pattern: "z+" }); // behind the fill on the only worker
    const grammar = await queued;
    assert.equal(grammar.worker.index, 2, "compiled again on the fresh worker");
    assert.deepEqual([...(await filling).rejected], [hanging.id]);
  } finally {
    await pool.close();
  }
});

/**
 * Sequences stepped in two pools at once: `pool` (where faults happen) and `control` (where none does), with the
 * same grammars and tokens; every step's rows must be bit for bit the control's. The tokens are allowed ones
 * picked through the allowed set (never the end), so the states go somewhere.
 */
class Twin {
  readonly ours: RemoteMatcher[] = [];
  readonly theirs: RemoteMatcher[] = [];
  private accepts: number[][] = [];
  private steps = 0;
  readonly mask: SharedArrayBuffer;
  private readonly ref: SharedArrayBuffer;

  constructor(
    readonly pool: GrammarPool,
    readonly control: GrammarPool,
    rows: number,
  ) {
    this.mask = new SharedArrayBuffer(rows * pool.maskWords * 4);
    this.ref = new SharedArrayBuffer(rows * pool.maskWords * 4);
  }

  async add(spec: Parameters<GrammarPool["compile"]>[0]): Promise<RemoteMatcher> {
    const m = this.pool.newMatcher(await this.pool.compile(spec));
    this.ours.push(m);
    this.theirs.push(this.control.newMatcher(await this.control.compile(spec)));
    this.accepts.push([]);
    return m;
  }

  /** One step of every sequence (rows 0..n-1), with `extra` jobs placed at `at` in the job list. */
  async step(extra: FillJob[] = [], at = 0) {
    const jobs: FillJob[] = this.ours.map((matcher, row) => ({ matcher, row, accepts: this.accepts[row]! }));
    jobs.splice(at, 0, ...extra);
    const result = await this.pool.fill(this.mask, jobs);
    const reference = await this.control.fill(
      this.ref,
      this.theirs.map((matcher, row) => ({ matcher, row, accepts: this.accepts[row]! })),
    );
    assert.deepEqual([...reference.rejected], [], "the control's sequences all go on");
    this.ours.forEach((m, r) => {
      assert.equal(m.error, null, `sequence ${r}`);
      assert.ok(!result.rejected.has(m.id), `sequence ${r} filled`);
      assert.deepEqual(
        rowOf(this.pool, this.mask, r),
        rowOf(this.control, this.ref, r),
        `step ${this.steps}: sequence ${r}'s row is the control's`,
      );
    });
    this.accepts = this.ours.map((_, r) => {
      const ids = allowedIds(rowOf(this.control, this.ref, r)).filter((id) => id !== EOT);
      return ids.length === 0 ? [] : [ids[(this.steps * 7919 + r * 131) % ids.length]!];
    });
    this.steps++;
    return result;
  }
}

const victims = [
  {
    type: "json_schema" as const,
    schema: {
      type: "object",
      properties: {
        name: { type: "string" },
        tags: { type: "array", items: { enum: ["alpha", "beta"] } },
        size: { type: "integer" },
      },
      required: ["name", "tags", "size"],
      additionalProperties: false,
    },
  },
  { type: "regex" as const, pattern: "[a-z]{2,6}-[0-9]{3}( [a-z]+)*" },
];

test("an abort in a worker's XGrammar instance while a row is filled retires it: that sequence ends with XGrammar's reason, the others on it are rebuilt on a fresh worker from their tokens, with the masks of matchers that never saw the abort; later compiles and fills work", {
  timeout: 60_000,
}, async (t) => {
  const pool = await faultyPool("abort", { maxWorkers: 1 });
  const control = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 1, startAll: false });
  try {
    const twin = new Twin(pool, control, 3);
    for (const spec of victims) await twin.add(spec);
    for (let i = 0; i < 4; i++) await twin.step();
    const first = twin.ours[0]!.worker;
    assert.equal(first.index, 1);
    const aborter = pool.newMatcher(await pool.compile({ type: "regex", pattern: "(faultmarker)?x+" }));
    assert.equal(aborter.worker, first, "the aborting matcher shares the victims' worker");
    // Jobs: victim 0, the aborter, victim 1: one row filled before the abort, one after it.
    const t0 = performance.now();
    const result = await twin.step([{ matcher: aborter, row: 2, accepts: [] }], 1);
    t.diagnostic(
      `the step with the abort took ${(performance.now() - t0).toFixed(0)} ms (worker start, compiles)`,
    );
    assert.deepEqual([...result.rejected], [aborter.id]);
    assert.match(
      aborter.error?.message ?? "",
      /^XGrammar failed while filling the next-token mask of a regex constraint, after 0 output tokens: Intended to rollback 1000000 tokens/,
    );
    assert.equal(allowedIds(rowOf(pool, twin.mask, 2)).length, 32002, "the failed row allows every token");
    assert.match(first.retired?.message ?? "", /^grammar worker 1 was retired after XGrammar aborted in it/);
    for (const m of twin.ours) assert.equal(m.worker.index, 2, "rebuilt on the fresh worker");
    assert.equal(pool.workerCount, 1);
    for (let i = 0; i < 6; i++) await twin.step();
    // A later compile and fill on the fresh worker.
    const digits = pool.newMatcher(await pool.compile({ type: "regex", pattern: "[0-9]+" }));
    const mask = new SharedArrayBuffer(pool.maskWords * 4);
    const later = await pool.fill(mask, [{ matcher: digits, row: 0, accepts: [] }]);
    assert.deepEqual([...later.rejected], [], digits.error?.message ?? "rejected");
    assert.ok(maskAllows(new Int32Array(mask), tokenizer.tokenToId("7")!));
    assert.equal(digits.worker.index, 2);
  } finally {
    await pool.close();
    await control.close();
  }
});

test("an abort while accepting a token, while making a matcher, or while compiling in the main instance retires the worker the same way", {
  timeout: 90_000,
}, async () => {
  const control = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 1, startAll: false });
  try {
    for (const [during, reason] of [
      [
        "accept",
        /^XGrammar failed while accepting token \d+ of a regex constraint, after 0 output tokens: Intended to rollback/,
      ],
      [
        "newMatcher",
        /^XGrammar failed while making the sequence's matcher of a regex constraint: Intended to rollback/,
      ],
      ["compile", /^XGrammar failed while compiling the grammar of a regex constraint: Intended to rollback/],
    ] as const) {
      const pool = await faultyPool("abort", { maxWorkers: 1 }, during);
      try {
        const twin = new Twin(pool, control, 3);
        for (const spec of victims) await twin.add(spec);
        for (let i = 0; i < 3; i++) await twin.step();
        const first = twin.ours[0]!.worker;
        const spec = { type: "regex" as const, pattern: "(faultmarker)?x+" };
        const x = tokenizer.tokenToId("x")!;
        if (during === "compile") {
          await assert.rejects(pool.compile(spec), (err: Error) => reason.test(err.message), during);
          await twin.step();
        } else {
          const aborter = pool.newMatcher(await pool.compile(spec));
          if (during === "accept") {
            await twin.step([{ matcher: aborter, row: 2, accepts: [] }]);
            // The aborter's accept comes first in the fill: the victims' accepts of this step were not handled
            // by the old worker at all (their rebuild replays them).
            await twin.step([{ matcher: aborter, row: 2, accepts: [x] }]);
          } else {
            await twin.step([{ matcher: aborter, row: 2, accepts: [] }]);
          }
          assert.match(aborter.error?.message ?? "", reason, during);
        }
        assert.match(
          first.retired?.message ?? "",
          /^grammar worker 1 was retired after XGrammar aborted/,
          during,
        );
        for (const m of twin.ours) assert.equal(m.worker.index, 2, `${during}: rebuilt on the fresh worker`);
        for (let i = 0; i < 3; i++) await twin.step();
        // The grammar compiles (or its matchers are made) on the fresh worker's sound instance.
        if (during !== "compile") {
          const m = pool.newMatcher(await pool.compile({ type: "regex", pattern: "y+" }));
          const mask = new SharedArrayBuffer(pool.maskWords * 4);
          const r = await pool.fill(mask, [{ matcher: m, row: 0, accepts: [] }]);
          assert.deepEqual([...r.rejected], [], `${during}: ${m.error?.message}`);
        }
      } finally {
        await pool.close();
      }
    }
  } finally {
    await control.close();
  }
});

test("a plain JS error while a row is filled (not an abort) ends only its sequence: the worker is not retired", {
  timeout: 30_000,
}, async () => {
  const pool = await faultyPool("throw", { maxWorkers: 1 });
  try {
    const x = tokenizer.tokenToId("x")!;
    const healthy = pool.newMatcher(await pool.compile({ type: "regex", pattern: "x+" }));
    const thrower = pool.newMatcher(await pool.compile({ type: "regex", pattern: "(faultmarker)?x+" }));
    const worker = healthy.worker;
    const mask = new SharedArrayBuffer(2 * pool.maskWords * 4);
    const result = await pool.fill(mask, [
      { matcher: thrower, row: 0, accepts: [] },
      { matcher: healthy, row: 1, accepts: [x] },
    ]);
    assert.deepEqual([...result.rejected], [thrower.id]);
    assert.match(thrower.error?.message ?? "", /filling the next-token mask .*: injected plain JS error$/);
    assert.equal(worker.retired, null);
    assert.equal(worker.dead, null);
    assert.equal(healthy.worker, worker);
    assert.ok(maskAllows(rowOf(pool, mask, 1), EOT), "after x: the end allowed");
    const next = await pool.fill(mask, [{ matcher: healthy, row: 1, accepts: [x] }]);
    assert.deepEqual([...next.rejected], []);
    assert.equal(healthy.worker, worker);
    assert.equal(pool.workerCount, 1);
  } finally {
    await pool.close();
  }
});

test("a sequence that cannot be rebuilt after an abort ends with an error saying why; the others are rebuilt", {
  timeout: 30_000,
}, async () => {
  const vocab = await vocabInfoFor(tokenizer, 32002);
  const pool = new GrammarPool(vocab, {
    maxWorkers: 1,
    startAll: false,
    testFault: [
      { kind: "abort", marker: "abortmarker" },
      { kind: "throw", marker: "replaymarker", during: "replay" },
    ],
  });
  const control = new GrammarPool(vocab, { maxWorkers: 1, startAll: false });
  try {
    const twin = new Twin(pool, control, 2);
    await twin.add(victims[1]!);
    const a = tokenizer.tokenToId("a")!;
    const stuck = pool.newMatcher(await pool.compile({ type: "regex", pattern: "(replaymarker)?[a-z]+" }));
    const aborter = pool.newMatcher(await pool.compile({ type: "regex", pattern: "(abortmarker)?x+" }));
    await twin.step([{ matcher: stuck, row: 1, accepts: [] }], 1);
    const result = await twin.step(
      [
        { matcher: stuck, row: 1, accepts: [a] },
        { matcher: aborter, row: 2, accepts: [] },
      ],
      1,
    );
    // Its row came before the abort in the fill (made by the sound instance): it ends at its next fill.
    assert.deepEqual([...result.rejected], [aborter.id]);
    const next = await twin.step([{ matcher: stuck, row: 1, accepts: [] }], 1);
    assert.deepEqual([...next.rejected], [stuck.id]);
    assert.match(
      stuck.error?.message ?? "",
      /^grammar worker 1 was retired after XGrammar aborted in it \(XGrammar failed while filling the next-token mask of a regex constraint, after 0 output tokens: .*\); this sequence's grammar state could not be rebuilt on another worker: XGrammar failed while replaying the sequence's output of a regex constraint: injected plain JS error$/,
    );
    assert.equal(twin.ours[0]!.worker.index, 2);
    await twin.step();
  } finally {
    await pool.close();
    await control.close();
  }
});

test("through SequenceConstraint: the aborting request's constraint fails with the named error, another on its worker and an allowed_token_ids one go on", {
  timeout: 30_000,
}, async () => {
  const local = new ConstraintFactory(tokenizer, 32002, {
    maxWorkers: 1,
    startAll: false,
    testFault: { kind: "abort", marker: "faultmarker" },
  });
  try {
    const victim = await local.create(params({ structuredOutput: { type: "regex", pattern: "(ab)+" } }));
    const only = await local.create(params({ allowedTokenIds: [5, 40] }));
    const ab = [tokenizer.tokenToId("a")!, tokenizer.tokenToId("b")!];
    const run = async (seqs: SequenceConstraint[]) => {
      const pending = local.startStepMasks(seqs.map((constraint) => ({ constraint, sample: true })));
      await pending!.done;
      return (i: number) => pending!.masks.tokenMask.slice(i * local.maskWords, (i + 1) * local.maskWords);
    };
    let rows = await run([victim, only]);
    assert.equal(victim.accept(ab[0]!), true);
    const aborting = await local.create(
      params({ structuredOutput: { type: "regex", pattern: "(faultmarker)?z+" } }),
    );
    const first = victim.remoteMatcher!.worker;
    assert.equal(aborting.remoteMatcher!.worker, first);
    rows = await run([aborting, victim, only]);
    assert.match(
      aborting.failure ?? "",
      /^structured output: XGrammar failed while filling the next-token mask/,
    );
    assert.equal(victim.failure, null);
    assert.notEqual(victim.remoteMatcher!.worker, first);
    const afterA = rows(1);
    assert.ok(
      maskAllows(afterA, ab[1]!) && !maskAllows(afterA, ab[0]!) && !maskAllows(afterA, EOT),
      "after a: b",
    );
    assert.deepEqual(allowedIds(rows(2)), [5, 40]);
    assert.equal(victim.accept(ab[1]!), true);
    rows = await run([victim, only]);
    assert.equal(victim.failure, null);
    assert.ok(maskAllows(rows(0), ab[0]!) && maskAllows(rows(0), EOT) && !maskAllows(rows(0), ab[1]!));
    for (const c of [victim, only, aborting]) c.dispose();
  } finally {
    await local.close();
  }
});

test("after an abort, matchers whose grammar has a replica on a serving worker are rebuilt there, without a compile", {
  timeout: 60_000,
}, async () => {
  const pool = await faultyPool("abort", { maxWorkers: 2 });
  const control = new GrammarPool(await vocabInfoFor(tokenizer, 32002), { maxWorkers: 1, startAll: false });
  try {
    const twin = new Twin(pool, control, 15);
    for (let i = 0; i < 12; i++) await twin.add(victims[1]!);
    const grammar = twin.ours[0]!.grammar;
    await until("a replica was compiled", () => grammar.replicas.length === 2);
    const [home, replica] = grammar.replicas as [GrammarWorker, GrammarWorker];
    for (let i = 0; i < 2; i++) await twin.add(victims[1]!);
    assert.ok(
      twin.ours.slice(12).every((m) => m.worker === replica),
      "the last two on the replica",
    );
    for (let i = 0; i < 2; i++) await twin.step();
    const aborter = pool.newMatcher(await pool.compile({ type: "regex", pattern: "(faultmarker)?x+" }));
    assert.equal(aborter.worker, replica, "the aborting grammar went to the least busy worker");
    await twin.step([{ matcher: aborter, row: 14, accepts: [] }], 13);
    assert.match(
      replica.retired?.message ?? "",
      /^grammar worker 2 was retired after XGrammar aborted in it/,
    );
    assert.match(aborter.error?.message ?? "", /^XGrammar failed while filling the next-token mask/);
    assert.ok(
      twin.ours.every((m) => m.worker === home),
      "all on the grammar's other replica",
    );
    // Not compiled anywhere else for the rebuild (a compile for it would have added a replica).
    assert.deepEqual(
      grammar.replicas.filter((w) => w.dead === null),
      [home],
    );
    for (let i = 0; i < 3; i++) await twin.step();
  } finally {
    await pool.close();
    await control.close();
  }
});
