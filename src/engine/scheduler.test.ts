/** Scheduler behaviour: the token budget, chunked prefill, preemption, the post-step update. */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { StepBatch } from "../backend/backend.js";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { BlockManager } from "./block-manager.js";
import { Scheduler } from "./scheduler.js";
import type { Sequence } from "./sequence.js";
import { testSequence } from "./sequence.test-helper.js";
import type { SamplingParams } from "./types.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
let tokenizer: Tokenizer;

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
});

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => 1000 + from + i);

function sequence(id: string, prompt: number[], params: SamplingParams = {}): Sequence {
  return testSequence(tokenizer, prompt, params, { requestId: id });
}

test("running sequences go first, then waiting ones, under the token budget (chunked prefill)", () => {
  const bm = new BlockManager(64, 16);
  const scheduler = new Scheduler(bm, { maxNumSeqs: 2, maxNumBatchedTokens: 20 });
  const a = sequence("a", range(30));
  const b = sequence("b", range(12, 50));
  const c = sequence("c", range(3, 90));
  for (const s of [a, b, c]) scheduler.add(s);

  let out = scheduler.schedule();
  assert.deepEqual(
    out.scheduled.map((s) => [s.seq.requestId, s.numNewTokens, s.sample]),
    [["a", 20, false]],
  );
  a.numComputedTokens += 20;
  out = scheduler.schedule();
  // a's last 10 prompt tokens first, then b's first chunk fills the budget; c waits (maxNumSeqs = 2).
  assert.deepEqual(
    out.scheduled.map((s) => [s.seq.requestId, s.numNewTokens, s.sample]),
    [
      ["a", 10, true],
      ["b", 10, false],
    ],
  );
  a.numComputedTokens += 10;
  b.numComputedTokens += 10;
  a.appendToken(7, null);
  out = scheduler.schedule();
  assert.deepEqual(
    out.scheduled.map((s) => [s.seq.requestId, s.numNewTokens, s.sample]),
    [
      ["a", 1, true],
      ["b", 2, true],
    ],
  );
  assert.equal(scheduler.waiting.length, 1);
  for (const s of [a, b, c]) scheduler.remove(s);
  assert.equal(bm.numFreeBlocks, 64);
});

test("out of blocks: the newest running sequence is preempted, not the oldest", () => {
  const bm = new BlockManager(4, 4);
  const scheduler = new Scheduler(bm, { maxNumSeqs: 8, maxNumBatchedTokens: 64, kvReserveTokens: 0 });
  const old = sequence("old", range(8));
  const young = sequence("young", range(8, 50));
  scheduler.add(old);
  scheduler.add(young);
  let out = scheduler.schedule();
  assert.equal(out.scheduled.length, 2);
  for (const { seq, numNewTokens } of out.scheduled) {
    seq.numComputedTokens += numNewTokens;
    seq.appendToken(5, null);
  }
  out = scheduler.schedule();
  assert.equal(out.numPreempted, 1);
  assert.deepEqual(
    out.scheduled.map((s) => s.seq.requestId),
    ["old"],
  );
  assert.deepEqual(
    scheduler.waiting.map((s) => s.requestId),
    ["young"],
  );
  assert.equal(young.numComputedTokens, 0);
  assert.deepEqual(young.blockTable, []);
});

/** A backend answer for `n` sequences: token 40 + i for sequence i, token logprobs -(t + 1) when asked. */
function stepResult(n: number, numTokens: number, tokenLogprobs: boolean) {
  return {
    tokenIds: Int32Array.from({ length: n }, (_, i) => 40 + i),
    logprobs: new Float32Array(n),
    topLogprobs: Array.from({ length: n }, () => null),
    ...(tokenLogprobs ? { tokenLogprobs: Float32Array.from({ length: numTokens }, (_, t) => -(t + 1)) } : {}),
  };
}

test("updateFromOutput: tokens gain KV, prompt logprobs are recorded, finished sequences are skipped", () => {
  const bm = new BlockManager(16, 4);
  const scheduler = new Scheduler(bm, { maxNumSeqs: 4, maxNumBatchedTokens: 8, kvReserveTokens: 0 });
  const a = sequence("a", range(6), { promptLogprobs: 0 });
  const b = sequence("b", range(2, 50));
  const gone = sequence("gone", range(2, 80));
  for (const s of [a, b, gone]) scheduler.add(s);
  const { scheduled } = scheduler.schedule();
  assert.deepEqual(
    scheduled.map((s) => [s.seq.requestId, s.numNewTokens, s.sample]),
    [
      ["a", 6, true],
      ["b", 2, true],
    ],
  );
  const batch = { queryStarts: Int32Array.of(0, 6, 8) };
  gone.status = "finished";
  const updates = scheduler.updateFromOutput(
    [...scheduled, { seq: gone, numNewTokens: 1, sample: true }],
    batch as never,
    stepResult(3, 8, true),
  );
  assert.deepEqual(
    updates.map((u) => [u.seq.requestId, u.index, u.tokenId]),
    [
      ["a", 0, 40],
      ["b", 1, 41],
    ],
  );
  assert.deepEqual([a.numComputedTokens, b.numComputedTokens, gone.numComputedTokens], [6, 2, 0]);
  // Token t's logprob belongs to position t + 1: positions 1..5 of a's prompt, from tokens 0..4.
  assert.deepEqual(
    a.promptLogprobs?.map((e) => e?.logprob ?? null),
    [null, -1, -2, -3, -4, -5],
  );
  assert.equal(a.promptLogprobs?.[1]?.tokenId, range(6)[1]);
});

test("updateFromOutput: with the backend's tokenTop, each prompt entry gets its rank and its own N alternatives", () => {
  const scheduler = new Scheduler(new BlockManager(16, 4), {
    maxNumSeqs: 4,
    maxNumBatchedTokens: 16,
    kvReserveTokens: 0,
  });
  const two = sequence("two", range(3), { promptLogprobs: 2 });
  const one = sequence("one", range(2, 10), { promptLogprobs: 1 });
  for (const s of [two, one]) scheduler.add(s);
  const { scheduled } = scheduler.schedule();
  // 5 rows (3 + 2 tokens), 2 alternatives each: row t holds ids 100t, 100t + 1; the rank of row t is t + 1.
  const result = {
    ...stepResult(2, 5, true),
    tokenTop: {
      ids: Int32Array.from({ length: 10 }, (_, i) => 100 * Math.floor(i / 2) + (i % 2)),
      logprobs: Float32Array.from({ length: 10 }, (_, i) => -i),
      ranks: Int32Array.of(1, 2, -1, 4, -1),
    },
  };
  scheduler.updateFromOutput(scheduled, { queryStarts: Int32Array.of(0, 3, 5) } as never, result);
  assert.deepEqual(two.promptLogprobs?.[1], {
    tokenId: range(3)[1],
    logprob: -1,
    top: [
      { tokenId: 0, logprob: -0 },
      { tokenId: 1, logprob: -1 },
    ],
    rank: 1,
  });
  assert.equal(two.promptLogprobs?.[2]?.rank, 2);
  assert.deepEqual(one.promptLogprobs?.[1], {
    tokenId: range(2, 10)[1],
    logprob: -4,
    top: [{ tokenId: 300, logprob: -6 }],
    rank: 4,
  });
});

test("updateFromOutput: a prefill chunk that does not reach the end samples nothing", () => {
  const scheduler = new Scheduler(new BlockManager(16, 4), {
    maxNumSeqs: 4,
    maxNumBatchedTokens: 4,
    kvReserveTokens: 0,
  });
  const a = sequence("a", range(10));
  scheduler.add(a);
  const { scheduled } = scheduler.schedule();
  const batch = { queryStarts: Int32Array.of(0, 4) };
  const updates = scheduler.updateFromOutput(scheduled, batch as never, stepResult(1, 4, false));
  assert.deepEqual(
    updates.map((u) => [u.seq.requestId, u.tokenId]),
    [["a", null]],
  );
  assert.equal(a.numComputedTokens, 4);
});

test("nothing schedulable with nothing running: the head of the queue is reported unfittable", () => {
  const bm = new BlockManager(2, 4);
  // Blocks held outside the scheduler leave the head (2 blocks, which the cache has) no room, ever.
  const outside = sequence("outside", range(8, 500));
  assert.ok(bm.allocate(outside, 8));
  const scheduler = new Scheduler(bm, { maxNumSeqs: 4, maxNumBatchedTokens: 64, kvReserveTokens: 0 });
  const head = sequence("head", range(5));
  scheduler.add(head);
  const out = scheduler.schedule();
  assert.deepEqual(out.scheduled, []);
  assert.deepEqual(
    out.unfittable.map((u) => [u.seq.requestId, u.reason]),
    [["head", "the request could not be scheduled (KV cache too small)"]],
  );
  assert.equal(scheduler.waiting.length, 0);
});

test("a sequence preempted before the engine hashed its last step's blocks (hashing deferred) keeps them findable", () => {
  const bm = new BlockManager(6, 4);
  const scheduler = new Scheduler(bm, { maxNumSeqs: 4, maxNumBatchedTokens: 12, kvReserveTokens: 0 });
  const a = sequence("a", range(4));
  const b = sequence("b", range(20, 100));
  scheduler.add(a);
  scheduler.add(b);
  const first = scheduler.schedule().scheduled;
  assert.deepEqual(
    first.map((s) => [s.seq.requestId, s.numNewTokens]),
    [
      ["a", 4],
      ["b", 8],
    ],
  );
  const result = { tokenIds: Int32Array.from([5000, -1]), logprobs: new Float32Array(2), topLogprobs: [] };
  // As the engine's loop: the output applied without hashing (that runs after the next launch).
  scheduler.applyOutput(
    first,
    {} as StepBatch,
    result,
    (seq, _index, tokenId) => {
      if (tokenId !== null) seq.appendToken(tokenId, null);
    },
    false,
  );
  // a's decode takes a free block; b (the newest) is preempted: its next chunk needs 3 more, 2 are left.
  const second = scheduler.schedule();
  assert.equal(second.numPreempted, 1);
  assert.deepEqual(scheduler.waiting, [b]);
  // b's two computed blocks still hold its prompt's KV: its recompute must find them in the prefix cache.
  assert.equal(bm.findCachedPrefix(b).length, 2);
});

test("deferred hashing: a waiting sequence looks the prefix cache up only after the last step's full blocks are hashed", () => {
  const bm = new BlockManager(32, 4);
  const scheduler = new Scheduler(bm, { maxNumSeqs: 4, maxNumBatchedTokens: 8, kvReserveTokens: 0 });
  const a = sequence("a", range(20));
  scheduler.add(a);
  const first = scheduler.schedule().scheduled; // a's first chunk: 0..7
  a.numComputedTokens += first[0]!.numNewTokens;
  scheduler.deferHashing(a); // as the engine: hashed after its next launch
  const b = sequence("b", [...range(12), ...range(5, 300)]);
  scheduler.add(b);
  assert.ok(scheduler.hasDeferredHashing);
  const second = scheduler.schedule();
  assert.equal(scheduler.hasDeferredHashing, false);
  // a's 8..15 take the budget: b waits, but a's two full blocks are findable now, and only those.
  assert.deepEqual(
    second.scheduled.map((s) => [s.seq.requestId, s.numNewTokens]),
    [["a", 8]],
  );
  assert.equal(bm.findCachedPrefix(b).length, 2);
  // Without a waiting sequence, nothing is hashed on the schedule path.
  a.numComputedTokens += 8;
  scheduler.deferHashing(a);
  scheduler.waiting.length = 0;
  scheduler.schedule();
  assert.ok(scheduler.hasDeferredHashing);
  scheduler.hashDeferred(() => assert.fail("no hashing error"));
  assert.equal(a.blockHashes.length, 4);
});

test("a sequence whose own prefix-cache hashing throws (deferred, at preemption, its lookup) is taken out and reported, freed; the others run", () => {
  const bm = new BlockManager(4, 4);
  const scheduler = new Scheduler(bm, { maxNumSeqs: 8, maxNumBatchedTokens: 64, kvReserveTokens: 0 });
  const cacheFullBlocks = bm.cacheFullBlocks.bind(bm);
  let poisoned: Sequence | null = null;
  bm.cacheFullBlocks = (owner) => {
    if (owner === poisoned) throw new Error("injected hashing failure");
    cacheFullBlocks(owner);
  };
  const findCachedPrefix = bm.findCachedPrefix.bind(bm);
  bm.findCachedPrefix = (owner) => {
    if (owner === poisoned) throw new Error("injected lookup failure");
    return findCachedPrefix(owner);
  };
  // At preemption: young is preempted (as in the test above) but its hashing throws: it is not queued again.
  const old = sequence("old", range(8));
  const young = sequence("young", range(8, 50));
  scheduler.add(old);
  scheduler.add(young);
  for (const { seq, numNewTokens } of scheduler.schedule().scheduled) {
    seq.numComputedTokens += numNewTokens;
    seq.appendToken(5, null);
  }
  poisoned = young;
  let out = scheduler.schedule();
  assert.deepEqual(
    out.scheduled.map((s) => s.seq.requestId),
    ["old"],
  );
  assert.deepEqual(
    out.unfittable.map((u) => [u.seq.requestId, u.reason]),
    [["young", "engine error: prefix caching failed for this request: injected hashing failure"]],
  );
  assert.deepEqual([scheduler.waiting, young.blockTable], [[], []]);
  // Its lookup: taken out of the queue, the next waiting one is scheduled.
  scheduler.remove(old);
  const looker = sequence("looker", range(6, 200));
  const next = sequence("next", range(6, 300));
  scheduler.add(looker);
  scheduler.add(next);
  poisoned = looker;
  out = scheduler.schedule();
  assert.deepEqual(
    out.unfittable.map((u) => [u.seq.requestId, u.reason]),
    [["looker", "engine error: prefix caching failed for this request: injected lookup failure"]],
  );
  assert.deepEqual(
    out.scheduled.map((s) => s.seq.requestId),
    ["next"],
  );
  // Deferred, flushed before a waiting sequence looks: taken out of the running queue before anything runs.
  next.numComputedTokens += 6;
  scheduler.deferHashing(next);
  poisoned = next;
  const waiter = sequence("waiter", range(3, 400));
  scheduler.add(waiter);
  out = scheduler.schedule();
  assert.deepEqual(
    out.unfittable.map((u) => u.seq.requestId),
    ["next"],
  );
  assert.deepEqual(
    out.scheduled.map((s) => s.seq.requestId),
    ["waiter"],
  );
  assert.deepEqual(next.blockTable, []);
  scheduler.remove(waiter);
  assert.equal(bm.numFreeBlocks, 4);
});

test("an iteration listener that throws does not abort schedule(): the step is scheduled, one warning, others still called", async () => {
  const bm = new BlockManager(64, 16);
  const scheduler = new Scheduler(bm, { maxNumSeqs: 4, maxNumBatchedTokens: 64, kvReserveTokens: 0 });
  const seen: number[] = [];
  const warnings: string[] = [];
  const onWarning = (w: Error) => {
    if (w.name === "AwqEngineWarning") warnings.push(w.message);
  };
  process.on("warning", onWarning);
  try {
    scheduler.iterationListeners.add(() => {
      throw new Error("histogram broke");
    });
    scheduler.iterationListeners.add((n) => seen.push(n));
    const a = sequence("a", range(10));
    scheduler.add(a);
    const first = scheduler.schedule();
    assert.deepEqual(
      first.scheduled.map((s) => [s.seq.requestId, s.numNewTokens]),
      [["a", 10]],
    );
    assert.equal(a.status, "running");
    a.numComputedTokens += 10;
    a.appendToken(7, null);
    const second = scheduler.schedule();
    assert.deepEqual(
      second.scheduled.map((s) => [s.seq.requestId, s.numNewTokens]),
      [["a", 1]],
    );
    assert.deepEqual(seen, [10, 1]);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /iteration listener threw.*histogram broke/);
  } finally {
    process.off("warning", onWarning);
  }
});

/** Runs one scheduled step by hand: KV for the scheduled tokens, token 5 sampled, finished sequences removed. */
function runStep(scheduler: Scheduler): { scheduled: number; computed: number; preempted: number } {
  const out = scheduler.schedule();
  let computed = 0;
  for (const { seq, numNewTokens, sample } of out.scheduled) {
    seq.numComputedTokens += numNewTokens;
    computed += numNewTokens;
    if (sample) seq.appendToken(5, null);
    if (seq.isFinished) scheduler.remove(seq);
  }
  return { scheduled: out.scheduled.length, computed, preempted: out.numPreempted };
}

test("admission keeps room to grow: no preemption (and less work) where vLLM's rule preempts and recomputes", () => {
  // 40 blocks of 16 tokens; 10 requests of 64 prompt tokens and 64 outputs: each ends on 8 blocks, so 5 fit at once.
  const run = (kvReserveTokens: number) => {
    const bm = new BlockManager(40, 16);
    const scheduler = new Scheduler(bm, { maxNumSeqs: 16, maxNumBatchedTokens: 512, kvReserveTokens });
    for (let i = 0; i < 10; i++)
      scheduler.add(sequence(`s${i}`, range(64, 100 * i), { maxTokens: 64, ignoreEos: true }));
    let steps = 0;
    let computed = 0;
    let mostRunning = 0;
    while (scheduler.hasWork()) {
      computed += runStep(scheduler).computed;
      mostRunning = Math.max(mostRunning, scheduler.running.length);
      assert.ok(++steps < 1000, "the run ends");
    }
    assert.equal(bm.numFreeBlocks, 40);
    return { preemptions: scheduler.numPreemptions, computed, mostRunning };
  };
  const greedy = run(0);
  const reserving = run(256);
  assert.ok(greedy.preemptions > 0, "vLLM's rule fills the cache with prompts and then preempts");
  assert.ok(greedy.mostRunning > 5, `vLLM's rule ran ${greedy.mostRunning} at once`);
  assert.equal(reserving.preemptions, 0);
  assert.equal(reserving.mostRunning, 5, "5 requests' prompts and outputs fill the 40 blocks");
  assert.equal(reserving.computed, 10 * (64 + 63), "each token's KV computed once");
  assert.ok(greedy.computed > reserving.computed, "preemption recomputes");
});

test("the room kept is min(max_tokens left, kvReserveTokens) a sequence", () => {
  // 20 blocks of 4 tokens, prompts of 8 tokens (2 blocks): admitted while 2 + reserve blocks each fit.
  const admitted = (maxTokens: number, kvReserveTokens: number) => {
    const scheduler = new Scheduler(new BlockManager(20, 4), {
      maxNumSeqs: 64,
      maxNumBatchedTokens: 1024,
      kvReserveTokens,
    });
    for (let i = 0; i < 12; i++) scheduler.add(sequence(`s${i}`, range(8, 50 * i), { maxTokens }));
    return scheduler.schedule().scheduled.length;
  };
  assert.equal(admitted(100, 8), 5, "reserve 8 tokens (2 blocks): 4 blocks each");
  assert.equal(admitted(4, 8), 6, "max_tokens 4 (1 block): 3 blocks each");
  assert.equal(admitted(100, 0), 10, "vLLM's rule: the prompts alone");
});

test("with nothing running the head is admitted even when its reserve does not fit (it may still finish)", () => {
  const scheduler = new Scheduler(new BlockManager(4, 4), { maxNumSeqs: 4, maxNumBatchedTokens: 64 });
  const seq = sequence("long", range(12), { maxTokens: 4 });
  scheduler.add(seq);
  assert.equal(scheduler.schedule().scheduled.length, 1);
  assert.equal(scheduler.running[0], seq);
});

test("cached prefix blocks that a running sequence holds cost the new sequence no room", () => {
  const bm = new BlockManager(10, 4);
  const scheduler = new Scheduler(bm, { maxNumSeqs: 4, maxNumBatchedTokens: 64, kvReserveTokens: 4 });
  const a = sequence("a", range(16), { maxTokens: 4 });
  scheduler.add(a);
  runStep(scheduler);
  bm.cacheFullBlocks(a);
  // After its decode token's block a holds 5 (its room), 5 are free. b shares a's 16 tokens and adds 4: 6 blocks with
  // its room, 4 of them a's cached ones, so it takes 2 from the pool (counting all 6 would refuse it).
  const b = sequence("b", [...range(16), ...range(4, 500)], { maxTokens: 4 });
  scheduler.add(b);
  const out = scheduler.schedule();
  assert.deepEqual(
    out.scheduled.map((s) => s.seq.requestId),
    ["a", "b"],
  );
  assert.equal(b.numCachedTokens, 16);
});
