/** Engine-loop behaviour on a deterministic fake backend (see fake-backend.test-helper.ts). */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { SamplingArraysPacker, type SequenceSampling } from "../backend/sampler-arrays.js";
import { GenerationJob } from "../server/generation.js";
import { ServerMetrics } from "../server/metrics.js";
import { SequenceConstraint } from "../structured/sequence-constraint.js";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { BlockManager, type BlockOwner } from "./block-manager.js";
import { Engine, type EngineOptions } from "./engine.js";
import { FakeBackend, fakeModel } from "./fake-backend.test-helper.js";
import { Sequence } from "./sequence.js";
import type { RequestOutput, SamplingParams, TokenLogprob } from "./types.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
let tokenizer: Tokenizer;

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
});

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => 1000 + from + i);

async function engine(opts: Partial<EngineOptions> = {}, backend = new FakeBackend()) {
  return Engine.create({
    model: fakeModel(opts.maxModelLen ?? 256),
    backend,
    tokenizer,
    maxModelLen: 256,
    ...opts,
  });
}

async function collect(stream: AsyncIterable<RequestOutput>) {
  const tokens: number[] = [];
  let last: RequestOutput | undefined;
  for await (const out of stream) {
    tokens.push(...out.tokenIdsDelta);
    last = out;
  }
  return { tokens, last: last! };
}

/** Prompts of different lengths (some over several blocks, one sharing a prefix). */
const PROMPTS = [
  range(5),
  range(40, 100),
  range(17, 200),
  [...range(40, 100).slice(0, 32), ...range(9, 300)],
  range(70, 400),
];

async function runAll(e: Engine, params: SamplingParams = { maxTokens: 24, temperature: 0 }) {
  return Promise.all(PROMPTS.map((p) => collect(e.generate({ promptTokenIds: p, params }))));
}

test("batching, chunked prefill, prefix caching and preemption never change the tokens", async () => {
  const alone: number[][] = [];
  for (const p of PROMPTS) {
    const e = await engine();
    alone.push(
      (await collect(e.generate({ promptTokenIds: p, params: { maxTokens: 24, temperature: 0 } }))).tokens,
    );
  }
  const configs: Partial<EngineOptions>[] = [
    {},
    { maxNumBatchedTokens: 7 },
    { enablePrefixCaching: false },
    { numBlocks: 12, maxNumBatchedTokens: 32, kvReserveTokens: 0 },
    { numBlocks: 12, maxNumBatchedTokens: 32 },
    { maxNumSeqs: 2 },
  ];
  const preemptions: number[] = [];
  for (const config of configs) {
    const backend = new FakeBackend();
    const e = await engine(config, backend);
    const results = await runAll(e);
    assert.deepEqual(
      results.map((r) => r.tokens),
      alone,
      JSON.stringify(config),
    );
    for (const r of results) assert.equal(r.last.finishReason, "length");
    const stats = e.stats();
    assert.equal(stats.freeBlocks, stats.numBlocks, "every block is back in the pool");
    assert.equal(stats.running + stats.waiting, 0);
    if (config.numBlocks === 12) preemptions.push(stats.numPreemptions ?? 0);
    if (config.numBlocks === 12 && config.kvReserveTokens === 0)
      assert.ok((stats.numPreemptions ?? 0) > 0, "the tiny cache forced preemption");
    if (config.maxNumBatchedTokens === 7) {
      assert.ok(backend.batches.every((b) => b.tokenIds.length <= 7));
    }
    if (config.maxNumSeqs === 2) assert.ok(backend.batches.every((b) => b.numSeqs <= 2));
  }
  // Admission that keeps room to grow (the default) preempts less on the same tiny cache than vLLM's rule.
  assert.ok(
    preemptions[1]! < preemptions[0]!,
    `preemptions: vLLM's rule ${preemptions[0]}, default ${preemptions[1]}`,
  );
});

test("a shared prefix is served from the cache and reported as cached tokens", async () => {
  const e = await engine();
  const first = await collect(e.generate({ promptTokenIds: PROMPTS[1]!, params: { maxTokens: 4 } }));
  assert.equal(first.last.cachedTokens, 0);
  const second = await collect(e.generate({ promptTokenIds: PROMPTS[3]!, params: { maxTokens: 4 } }));
  assert.equal(second.last.cachedTokens, 32);
});

test("a request that can never fit the cache ends with an error; the engine keeps serving", async () => {
  const e = await engine({ numBlocks: 3, maxNumBatchedTokens: 16 });
  const big = collect(e.generate({ promptTokenIds: range(60), params: { maxTokens: 4 } }));
  const grows = collect(
    e.generate({ promptTokenIds: range(40), params: { maxTokens: 30, ignoreEos: true } }),
  );
  const small = collect(e.generate({ promptTokenIds: range(5), params: { maxTokens: 4 } }));
  const [b, g, s] = await Promise.all([big, grows, small]);
  assert.equal(b.last.finishReason, "error");
  assert.match(b.last.error ?? "", /KV blocks/);
  assert.equal(g.last.finishReason, "error", "decode past 48 tokens needs a 4th block");
  // Positions 40..47 computed: 9 outputs (the first from the prefill), then position 48 has no block.
  assert.equal(g.tokens.length, 48 - 40 + 1);
  assert.equal(s.last.finishReason, "length");
  assert.equal(e.stats().freeBlocks, 3);
});

test("a backend error fails only that step's requests, frees their blocks, and the engine goes on", async () => {
  const backend = new FakeBackend();
  const e = await engine({}, backend);
  let failures = 0;
  backend.failWhen = (batch) => batch.numSeqs === 2 && failures++ === 0;
  const results = await Promise.all([
    collect(e.generate({ promptTokenIds: range(5), params: { maxTokens: 3 } })),
    collect(e.generate({ promptTokenIds: range(9), params: { maxTokens: 3 } })),
  ]);
  for (const r of results) {
    assert.equal(r.last.finishReason, "error");
    assert.match(r.last.error ?? "", /injected backend failure/);
  }
  const after = await collect(e.generate({ promptTokenIds: range(5), params: { maxTokens: 3 } }));
  assert.equal(after.last.finishReason, "length");
  assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
});

test("abort by id, by signal, and by leaving the loop: blocks come back", async () => {
  const backend = new FakeBackend();
  backend.stepDelayMs = 2; // 200 tokens take >= 400 ms, far past the 5 ms abort
  const e = await engine({}, backend);
  const params = { maxTokens: 200, ignoreEos: true };
  const byId = e.generate({ requestId: "x", promptTokenIds: range(20), params });
  const controller = new AbortController();
  const bySignal = e.generate({ promptTokenIds: range(20), params, signal: controller.signal });
  const byBreak = e.generate({ promptTokenIds: range(20), params });
  let steps = 0;
  const broke = (async () => {
    for await (const _ of byBreak) if (++steps === 3) break;
  })();
  setTimeout(() => {
    e.abort("x");
    controller.abort();
  }, 5);
  const [a, b] = await Promise.all([collect(byId), collect(bySignal), broke]);
  assert.equal(a.last.finishReason, "abort");
  assert.equal(b.last.finishReason, "abort");
  assert.ok(a.tokens.length < 200);
  await e.idle();
  assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
  assert.equal(e.stats().running + e.stats().waiting, 0);
});

test("min_tokens bans stop ids, and a seeded request is reproducible", async () => {
  const e = await engine();
  // The fake backend moves off a banned token; without the ban it would pick it.
  const free = await collect(
    e.generate({ promptTokenIds: range(6), params: { maxTokens: 1, temperature: 0 } }),
  );
  const banned = free.tokens[0]!;
  const held = await collect(
    e.generate({ promptTokenIds: range(6), params: { maxTokens: 2, minTokens: 1, stopTokenIds: [banned] } }),
  );
  assert.notEqual(held.tokens[0], banned);
  const seeded = (seed: number) =>
    collect(e.generate({ promptTokenIds: range(6), params: { maxTokens: 8, temperature: 1, seed } }));
  const [x, y, z] = await Promise.all([seeded(1), seeded(1), seeded(2)]);
  assert.deepEqual(x.tokens, y.tokens);
  assert.notDeepEqual(x.tokens, z.tokens);
});

test("generate() rejects bad requests before queueing them", async () => {
  const e = await engine({ maxModelLen: 64 });
  assert.throws(() => e.generate({ promptTokenIds: [], params: {} }), {
    name: "InvalidParamError",
    param: "prompt",
  });
  assert.throws(() => e.generate({ promptTokenIds: range(64), params: {} }), { param: "prompt" });
  assert.throws(() => e.generate({ promptTokenIds: [1, 99999999], params: {} }), { param: "prompt" });
  assert.throws(() => e.generate({ promptTokenIds: range(10), params: { maxTokens: 60 } }), {
    param: "max_tokens",
  });
  assert.throws(() => e.generate({ promptTokenIds: range(10), params: { topP: 2 } }), { param: "top_p" });
  // n > 1 is fanned out by the front ends (choiceParams): the engine refuses it rather than run one.
  assert.throws(() => e.generate({ promptTokenIds: range(10), params: { n: 2 } }), {
    name: "InvalidParamError",
    param: "n",
    message: /got n = 2; fan the choices out .*choiceParams/,
  });
  // A backend without promptTopLogprobs gives each prompt token's own logprob only.
  assert.equal(e.maxPromptLogprobs, 0);
  assert.throws(() => e.generate({ promptTokenIds: range(10), params: { promptLogprobs: 2 } }), {
    param: "prompt_logprobs",
    message: /at most 0/,
  });
  assert.equal(e.stats().waiting, 0);
  await e.shutdown();
  assert.throws(() => e.generate({ promptTokenIds: range(10), params: {} }), { name: "EngineClosedError" });
});

test("shutdown lets requests finish within the grace period, then aborts the rest", async () => {
  const backend = new FakeBackend();
  backend.stepDelayMs = 5; // slow needs >= 1 s, quick about 10 ms: a 300 ms grace tells them apart
  const e = await engine({}, backend);
  const quick = collect(e.generate({ promptTokenIds: range(5), params: { maxTokens: 2 } }));
  const slow = collect(e.generate({ promptTokenIds: range(5), params: { maxTokens: 200, ignoreEos: true } }));
  await e.shutdown({ graceMs: 300 });
  assert.equal((await quick).last.finishReason, "length");
  assert.equal((await slow).last.finishReason, "abort");
  assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
});

test("eosTokenIds: the tokenizer's stop ids and config.json's eos ids, once each", async () => {
  const e = await engine();
  const expected = [...new Set([...tokenizer.stopTokenIds, ...fakeModel(256).config.eosTokenIds])];
  assert.deepEqual([...e.eosTokenIds], expected);
  assert.ok(e.eosTokenIds.length > 0);
  await e.shutdown();
});

test("chunked prefill: a long prompt that arrives mid-decode is prefilled in chunks beside every decode", async () => {
  const backend = new FakeBackend();
  const e = await engine({ maxNumBatchedTokens: 16 }, backend);
  const params = { maxTokens: 24, temperature: 0, ignoreEos: true };
  const alone = (await collect((await engine()).generate({ promptTokenIds: range(100, 500), params })))
    .tokens;
  const decoders = [range(4), range(5, 50), range(6, 80)].map((p) =>
    collect(e.generate({ promptTokenIds: p, params })),
  );
  while (backend.batches.length < 3) await new Promise((resolve) => setImmediate(resolve));
  const firstMixed = backend.batches.length;
  const long = await collect(e.generate({ promptTokenIds: range(100, 500), params }));
  await Promise.all(decoders);
  assert.deepEqual(long.tokens, alone, "chunking beside decodes does not change the tokens");
  // Every step while the long prompt is prefilled: the three decodes (one token each) and a chunk of it,
  // within the token budget, so the decodes' time per token stays one step.
  const mixed = backend.batches.slice(firstMixed).filter((b) => b.numSeqs === 4);
  assert.ok(mixed.length >= Math.ceil(100 / 13) - 1, `${mixed.length} mixed steps`);
  for (const b of mixed) {
    const lengths = Array.from({ length: b.numSeqs }, (_, i) => b.queryStarts[i + 1]! - b.queryStarts[i]!);
    assert.deepEqual(lengths.slice(0, 3), [1, 1, 1]);
    assert.ok(b.tokenIds.length <= 16);
  }
  assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
});

test("a stop string is seen one step late: the extra token is computed, then dropped and never shown", async () => {
  const backend = new FakeBackend();
  const e = await engine({}, backend);
  const promptTokenIds = range(8, 700);
  const params = { maxTokens: 20, temperature: 0, ignoreEos: true, logprobs: 0 };
  const fullOutputs: RequestOutput[] = [];
  for await (const out of e.generate({ promptTokenIds, params })) fullOutputs.push(out);
  const fullTokens = fullOutputs.flatMap((o) => o.tokenIdsDelta);
  // The text after each token (one token per output).
  const texts = fullOutputs.map((_, i) =>
    fullOutputs
      .slice(0, i + 1)
      .map((o) => o.textDelta)
      .join(""),
  );
  // A stop string ending in token k's text (k >= 10), not found before it.
  const k = texts.findIndex((t, i) => i >= 10 && t.length > texts[i - 1]!.length);
  const stop = texts[k]!.slice(texts[k - 1]!.length);
  assert.ok(!texts[k - 1]!.includes(stop));
  const stepsBefore = backend.batches.length;
  const outputs: RequestOutput[] = [];
  for await (const out of e.generate({ promptTokenIds, params: { ...params, stop: [stop] } }))
    outputs.push(out);
  const last = outputs.at(-1)!;
  const tokens = outputs.flatMap((o) => o.tokenIdsDelta);
  assert.deepEqual([last.finishReason, last.stopReason], ["stop", stop]);
  assert.deepEqual(tokens, fullTokens.slice(0, k + 1));
  assert.equal(last.completionTokens, k + 1);
  assert.equal(outputs.flatMap((o) => o.logprobsDelta).length, k + 1, "one logprob entry per token shown");
  assert.equal(
    outputs.map((o) => o.textDelta).join(""),
    texts[k - 1] + texts[k]!.slice(texts[k - 1]!.length, texts[k]!.indexOf(stop, texts[k - 1]!.length)),
  );
  await e.idle();
  // The prefill and k + 2 decodes: the chained step launched beside the one that gave token k also ran, so two
  // tokens were computed and dropped.
  assert.ok(e.chainsSteps);
  assert.equal(backend.batches.length - stepsBefore, k + 3);
  assert.equal(e.stats().freeBlocks, e.stats().numBlocks);

  // Without chained steps (AWQ_ENGINE_ASYNC=0): the same result, one dropped token.
  const unchainedBackend = new FakeBackend();
  const unchained = await engine({ asyncScheduling: false }, unchainedBackend);
  assert.ok(!unchained.chainsSteps);
  const unchainedOutputs: RequestOutput[] = [];
  for await (const out of unchained.generate({ promptTokenIds, params: { ...params, stop: [stop] } }))
    unchainedOutputs.push(out);
  assert.deepEqual(
    unchainedOutputs.flatMap((o) => o.tokenIdsDelta),
    tokens,
  );
  await unchained.idle();
  assert.equal(unchainedBackend.batches.length, k + 2);
  assert.equal(unchainedBackend.maxInFlight, 1);

  // With the outputs produced before the next schedule (AWQ_ENGINE_OVERLAP=0), the same result and no extra step.
  const syncBackend = new FakeBackend();
  const sync = await engine({ overlapOutputs: false }, syncBackend);
  const syncOutputs: RequestOutput[] = [];
  for await (const out of sync.generate({ promptTokenIds, params: { ...params, stop: [stop] } }))
    syncOutputs.push(out);
  assert.deepEqual(
    syncOutputs.flatMap((o) => o.tokenIdsDelta),
    tokens,
  );
  assert.equal(syncOutputs.map((o) => o.textDelta).join(""), outputs.map((o) => o.textDelta).join(""));
  assert.equal(syncBackend.batches.length, k + 1);
});

test("stop strings, aborts and preemption together: every stream ends once, stop-string text is cut as alone, blocks come back", async () => {
  const params = { maxTokens: 24, temperature: 0, ignoreEos: true };
  // Reference texts, one request at a time.
  const reference: string[] = [];
  for (const p of PROMPTS) {
    let text = "";
    for await (const out of (await engine()).generate({ promptTokenIds: p, params })) text += out.textDelta;
    reference.push(text);
  }
  // A stop string from the middle of each reference (two characters after its 10th).
  const stops = reference.map((t) => t.slice(10, 12));
  const configs: Partial<EngineOptions>[] = [
    {},
    { numBlocks: 12, maxNumBatchedTokens: 32 },
    { maxNumBatchedTokens: 7 },
    { numBlocks: 12, maxNumBatchedTokens: 32, overlapOutputs: false },
  ];
  for (const config of configs) {
    const backend = new FakeBackend();
    backend.stepDelayMs = 1;
    const e = await engine(config, backend);
    const runs = PROMPTS.flatMap((p, i) => {
      const controller = new AbortController();
      if (i % 2 === 1) setTimeout(() => controller.abort(), 3 + i);
      const withStop = (async () => {
        const outs: RequestOutput[] = [];
        for await (const out of e.generate({ promptTokenIds: p, params: { ...params, stop: [stops[i]!] } }))
          outs.push(out);
        return { kind: "stop" as const, i, outs };
      })();
      const aborted = (async () => {
        const outs: RequestOutput[] = [];
        for await (const out of e.generate({ promptTokenIds: p, params, signal: controller.signal }))
          outs.push(out);
        return { kind: "abort" as const, i, outs };
      })();
      return [withStop, aborted];
    });
    for (const { kind, i, outs } of await Promise.all(runs)) {
      const label = `${JSON.stringify(config)} ${kind} ${i}`;
      assert.equal(outs.filter((o) => o.finished).length, 1, label);
      assert.equal(outs.at(-1)!.finished, true, label);
      const text = outs.map((o) => o.textDelta).join("");
      if (kind === "stop") {
        const cut = reference[i]!.indexOf(stops[i]!);
        assert.equal(text, reference[i]!.slice(0, cut), label);
        assert.equal(outs.at(-1)!.stopReason, stops[i], label);
      } else {
        assert.ok(reference[i]!.startsWith(text), label);
        if (i % 2 === 0) assert.equal(outs.at(-1)!.finishReason, "length", label);
      }
    }
    await e.idle();
    const stats = e.stats();
    assert.equal(stats.freeBlocks, stats.numBlocks, JSON.stringify(config));
    assert.equal(stats.running + stats.waiting, 0);
  }
});

test("an abort or a backend error landing before a step's outputs are delivered keeps one logprob entry per token", async () => {
  // The abort comes while the next step runs, after the last token was appended but before its logprob entry
  // (built off the critical path) was pushed: the final output must still carry it.
  class AbortingBackend extends FakeBackend {
    onStep: (() => void) | null = null;
    override async step(batch: Parameters<FakeBackend["step"]>[0]) {
      const hook = this.onStep;
      this.onStep = null;
      hook?.();
      return super.step(batch);
    }
  }
  const backend = new AbortingBackend();
  const e = await engine({}, backend);
  const params = { maxTokens: 3, temperature: 0, ignoreEos: true, logprobs: 0 };
  const shortId = "short";
  let stepsSeen = 0;
  // Step 3 returned the short request's last token (it reached max_tokens); step 4 runs only the long one. The
  // abort comes with the first step launched after step 3's result is applied: step 4 itself, or with chained
  // steps (step 4 launched beside step 3) step 5.
  const abortWith = e.chainsSteps ? 5 : 4;
  const countSteps = () => {
    stepsSeen++;
    backend.onStep = stepsSeen === abortWith - 1 ? () => e.abort(shortId) : countSteps;
  };
  backend.onStep = countSteps;
  const [short, long] = await Promise.all([
    collect2(e.generate({ requestId: shortId, promptTokenIds: range(5), params })),
    collect2(e.generate({ promptTokenIds: range(6, 50), params: { ...params, maxTokens: 8 } })),
  ]);
  assert.equal(short.tokens.length, 3);
  assert.equal(short.logprobs, short.tokens.length, "one logprob entry per token of the aborted request");
  assert.equal(long.logprobs, long.tokens.length);

  // A backend error on the next step: the failed requests' last tokens keep their entries too.
  const failing = new FakeBackend();
  const e2 = await engine({}, failing);
  let steps = 0;
  failing.failWhen = () => ++steps === 3;
  const failed = await collect2(
    e2.generate({ promptTokenIds: range(5), params: { ...params, maxTokens: 8 } }),
  );
  assert.equal(failed.last.finishReason, "error");
  assert.equal(failed.logprobs, failed.tokens.length, "one logprob entry per token of the failed request");
  await e.idle();
  assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
});

/** collect() that also counts the logprob entries. */
async function collect2(stream: AsyncIterable<RequestOutput>) {
  const tokens: number[] = [];
  let logprobs = 0;
  let last: RequestOutput | undefined;
  for await (const out of stream) {
    tokens.push(...out.tokenIdsDelta);
    logprobs += out.logprobsDelta.length;
    last = out;
  }
  return { tokens, last: last!, logprobs };
}

test("AWQ_ENGINE_OVERLAP takes 0 or 1 (unset or empty: on); any other value is refused by name (an A/B run never measures the default twice)", async () => {
  const saved = process.env.AWQ_ENGINE_OVERLAP;
  try {
    for (const value of ["off", "false", "2"]) {
      process.env.AWQ_ENGINE_OVERLAP = value;
      await assert.rejects(engine(), /AWQ_ENGINE_OVERLAP/, JSON.stringify(value));
    }
    for (const value of ["0", "1", ""]) {
      process.env.AWQ_ENGINE_OVERLAP = value;
      await engine();
    }
  } finally {
    if (saved === undefined) delete process.env.AWQ_ENGINE_OVERLAP;
    else process.env.AWQ_ENGINE_OVERLAP = saved;
  }
});

test("a backend error in the step after a stop string was reached does not turn that finished request into an error", async () => {
  const promptTokenIds = range(8, 700);
  const params = { maxTokens: 20, temperature: 0, ignoreEos: true };
  const outputs: RequestOutput[] = [];
  for await (const out of (await engine()).generate({ promptTokenIds, params })) outputs.push(out);
  const texts = outputs.map((_, i) =>
    outputs
      .slice(0, i + 1)
      .map((o) => o.textDelta)
      .join(""),
  );
  const k = texts.findIndex((t, i) => i >= 5 && t.length > texts[i - 1]!.length);
  const stop = texts[k]!.slice(texts[k - 1]!.length);
  for (const overlapOutputs of [true, false]) {
    const backend = new FakeBackend();
    let steps = 0;
    // Step k + 1 samples token k (the stop string's end); step k + 2 (the one its stop string is seen beside
    // when outputs overlap) fails.
    backend.failWhen = () => ++steps === k + 2;
    const e = await engine({ overlapOutputs }, backend);
    const got = await collect2(e.generate({ promptTokenIds, params: { ...params, stop: [stop] } }));
    assert.deepEqual(
      [got.last.finishReason, got.last.stopReason],
      ["stop", stop],
      `overlap ${overlapOutputs}`,
    );
    assert.equal(got.tokens.length, k + 1);
    await e.idle();
    assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
  }
});

/** Every output of a stream, with the tokens, text and logprob entries they add up to. */
async function gather(stream: AsyncIterable<RequestOutput>) {
  const all: RequestOutput[] = [];
  for await (const out of stream) all.push(out);
  return {
    all,
    last: all.at(-1)!,
    tokens: all.flatMap((o) => o.tokenIdsDelta),
    text: all.map((o) => o.textDelta).join(""),
    logprobs: all.reduce((n, o) => n + o.logprobsDelta.length, 0),
  };
}

test("an exception while handling one request's outputs ends only that request; the others keep their tokens", async () => {
  const params = { maxTokens: 12, temperature: 0, ignoreEos: true };
  const prompts = { a: range(6, 800), bad: range(9, 820), c: range(20, 840) };
  const baseline = await Promise.all(
    Object.entries(prompts).map(async ([id, p]) =>
      gather(
        (await engine()).generate({ requestId: id, promptTokenIds: p, params: { ...params, logprobs: 1 } }),
      ),
    ),
  );
  const poison = prompts.bad.at(-1)!;
  for (const r of baseline) assert.ok(!r.tokens.includes(poison), "the poison id is only in bad's prompt");
  // Two failures of "bad" alone: its detokenizer throws (text side, after the next launch when outputs overlap),
  // or its token-level stop checks throw at its 3rd token (critical path, inside the scheduler's update).
  const failures = ["detokenizer", "stop checks"] as const;
  for (const failure of failures) {
    for (const overlapOutputs of [true, false]) {
      const label = `${failure}, overlap ${overlapOutputs}`;
      let armed = false;
      const stub: Tokenizer = Object.create(tokenizer);
      stub.decode = (ids, opts) => {
        if (armed && failure === "detokenizer" && ids.includes(poison)) {
          throw new Error("injected detokenizer failure");
        }
        return tokenizer.decode(ids, opts);
      };
      const appendToken = Sequence.prototype.appendToken;
      Sequence.prototype.appendToken = function (this: Sequence, tokenId, logprob) {
        if (failure === "stop checks" && this.requestId === "bad" && this.numOutputTokens === 2) {
          throw new Error("injected stop-check failure");
        }
        appendToken.call(this, tokenId, logprob);
      };
      try {
        const e = await engine({ overlapOutputs, tokenizer: stub });
        const streams = Object.entries(prompts).map(([id, p]) =>
          e.generate({ requestId: id, promptTokenIds: p, params: { ...params, logprobs: 1 } }),
        );
        armed = true;
        const [a, bad, c] = await Promise.all(streams.map(gather));
        assert.equal(bad!.last.finishReason, "error", label);
        assert.match(bad!.last.error ?? "", /injected .* failure/, label);
        assert.equal(bad!.all.filter((o) => o.finished).length, 1, `${label}: one final output`);
        assert.ok(bad!.tokens.length < params.maxTokens, label);
        for (const [i, r] of [a!, c!].entries()) {
          const base = baseline[i * 2]!;
          assert.deepEqual(r.tokens, base.tokens, label);
          assert.equal(r.text, base.text, label);
          assert.equal(r.logprobs, params.maxTokens, label);
          assert.equal(base.logprobs, params.maxTokens);
          assert.equal(r.last.finishReason, "length", label);
          assert.equal(r.all.filter((o) => o.finished).length, 1, label);
        }
        await e.idle();
        const stats = e.stats();
        assert.equal(stats.freeBlocks, stats.numBlocks, `${label}: every block is back in the pool`);
        assert.equal(stats.running + stats.waiting, 0, label);
        // The engine keeps serving.
        armed = false;
        const after = await collect(e.generate({ promptTokenIds: prompts.a, params }));
        assert.deepEqual(after.tokens, baseline[0]!.tokens, label);
      } finally {
        Sequence.prototype.appendToken = appendToken;
      }
    }
  }
});

test("prefix caching: a request arriving while a shared prefix is mid chunked-prefill reuses every block the last step filled, never one still in flight", async () => {
  // Prefill of `first` (100 tokens) under a 64-token budget: step 1 computes 0..63 (4 full blocks), step 2
  // 64..99 beside the second request, which arrives during step 1 and shares the first 96 tokens.
  class HookedBackend extends FakeBackend {
    onStep: (() => void) | null = null;
    override async step(batch: Parameters<FakeBackend["step"]>[0]) {
      const hook = this.onStep;
      this.onStep = null;
      hook?.();
      return super.step(batch);
    }
  }
  const first = range(100, 900);
  const second = [...first.slice(0, 96), ...range(30, 1100)];
  const params = { maxTokens: 6, temperature: 0, ignoreEos: true };
  const alone = async (p: number[]) =>
    (await collect((await engine()).generate({ promptTokenIds: p, params }))).tokens;
  const [firstAlone, secondAlone] = [await alone(first), await alone(second)];
  for (const overlapOutputs of [true, false]) {
    const label = `overlap ${overlapOutputs}`;
    const backend = new HookedBackend();
    const e = await engine({ maxNumBatchedTokens: 64, overlapOutputs }, backend);
    let late: Promise<Awaited<ReturnType<typeof collect>>> | null = null;
    backend.onStep = () => {
      late = collect(e.generate({ promptTokenIds: second, params }));
    };
    const early = await collect(e.generate({ promptTokenIds: first, params }));
    const got = await late!;
    // The 4 blocks step 1 filled are the whole cached prefix it could get: blocks 4 and 5 (64..95) are being
    // written by step 2, the step it is scheduled in (the backend throws on such a read).
    assert.equal(got.last.cachedTokens, 64, label);
    assert.equal(backend.batches[1]!.numSeqs, 2, `${label}: admitted in step 2`);
    assert.deepEqual(got.tokens, secondAlone, label);
    assert.deepEqual(early.tokens, firstAlone, label);
    assert.equal(e.stats().prefixCacheHits, 64, label);
    await e.idle();
    assert.equal(e.stats().freeBlocks, e.stats().numBlocks, label);
  }
});

test("a throw from one request's constraint dispose(), prefix-cache hashing, prompt-logprob entry or step view ends only that request", async () => {
  const base = { maxTokens: 12, temperature: 0, ignoreEos: true, logprobs: 1 };
  const prompts = { a: range(6, 800), bad: range(9, 820), c: range(20, 840) };
  // bad's text without a stop string, for the stop-string case (a stop string completed by its 5th token).
  const badText = await gather(
    (await engine()).generate({ promptTokenIds: prompts.bad, params: { ...base, maxTokens: 6 } }),
  );
  const texts = badText.all.map((_, i) =>
    badText.all
      .slice(0, i + 1)
      .map((o) => o.textDelta)
      .join(""),
  );
  const k = texts.findIndex((t, i) => i >= 3 && t.length > texts[i - 1]!.length);
  const stop = texts[k]!.slice(texts[k - 1]!.length);
  assert.ok(k > 0 && !texts[k - 1]!.includes(stop));
  const badWords = ["zebrafishqq"]; // never produced: only there to give bad a constraint
  type Failure =
    | "dispose at max_tokens"
    | "dispose at a stop string"
    | "dispose at abort"
    | "hashing its blocks"
    | "hashing its blocks as it finishes"
    | "prefix lookup"
    | "prompt logprob entry"
    | "step view"
    | "packing its step arrays"
    | "its mask row";
  const failures: Record<Failure, SamplingParams> = {
    "dispose at max_tokens": { ...base, maxTokens: 6, badWords },
    "dispose at a stop string": { ...base, stop: [stop], badWords },
    "dispose at abort": { ...base, badWords },
    "hashing its blocks": base, // its first full block (16 tokens) comes with its 8th token
    "hashing its blocks as it finishes": { ...base, maxTokens: 6 },
    "prefix lookup": base,
    "prompt logprob entry": { ...base, promptLogprobs: 0 },
    "step view": { ...base, badWords },
    "packing its step arrays": { ...base, seed: 4242 }, // the seed tells its sampling settings apart
    // Its first row throws (the fake backend applies no mask: a later token would be refused anyway).
    "its mask row": { ...base, allowedTokenIds: [5, 6, 7] },
  };
  const isBad = (owner: unknown) => (owner as Sequence).requestId === "bad";
  for (const [failure, badParams] of Object.entries(failures) as [Failure, SamplingParams][]) {
    let armed = false;
    const disposeCalls = new Map<object, number>();
    const restore: (() => void)[] = [];
    const patch = <T extends object, K extends keyof T>(proto: T, key: K, wrap: (orig: T[K]) => T[K]) => {
      const orig = proto[key];
      proto[key] = wrap(orig);
      restore.push(() => {
        proto[key] = orig;
      });
    };
    const fail = (what: string) => {
      throw new Error(`injected ${what} failure`);
    };
    patch(
      SequenceConstraint.prototype,
      "dispose",
      (orig) =>
        function (this: SequenceConstraint) {
          disposeCalls.set(this, (disposeCalls.get(this) ?? 0) + 1);
          orig.call(this);
          if (armed && failure.startsWith("dispose")) fail("dispose");
        },
    );
    patch(
      SequenceConstraint.prototype,
      "bannedTokenIds",
      (orig) =>
        function (this: SequenceConstraint, output: readonly number[]) {
          if (armed && failure === "step view" && output.length === 3) fail("step view");
          return orig.call(this, output);
        },
    );
    patch(
      SequenceConstraint.prototype,
      "fillFixedRow",
      (orig) =>
        function (this: SequenceConstraint, row: Int32Array) {
          if (armed && failure === "its mask row") fail("mask row");
          orig.call(this, row);
        },
    );
    patch(
      SamplingArraysPacker.prototype,
      "pack",
      (orig) =>
        function <T>(this: SamplingArraysPacker, items: readonly T[], pick: (item: T) => SequenceSampling) {
          const own = (item: T) => pick(item).seed === 4242 && pick(item).outputIndex === 3;
          if (armed && failure === "packing its step arrays" && items.some(own)) fail("packing");
          return orig.call(this, items, pick as (item: unknown) => SequenceSampling);
        } as SamplingArraysPacker["pack"],
    );
    patch(
      BlockManager.prototype,
      "cacheFullBlocks",
      (orig) =>
        function (this: BlockManager, owner: BlockOwner) {
          const seq = owner as Sequence;
          if (armed && isBad(seq)) {
            if (failure === "hashing its blocks" && seq.numComputedTokens >= 16) fail("hashing");
            if (failure === "hashing its blocks as it finishes" && seq.isFinished) fail("hashing");
          }
          orig.call(this, owner);
        },
    );
    patch(
      BlockManager.prototype,
      "findCachedPrefix",
      (orig) =>
        function (this: BlockManager, owner: BlockOwner) {
          if (armed && failure === "prefix lookup" && isBad(owner)) fail("prefix lookup");
          return orig.call(this, owner);
        },
    );
    patch(
      Sequence.prototype,
      "setPromptLogprob",
      (orig) =>
        function (this: Sequence, index: number, entry: TokenLogprob) {
          if (armed && failure === "prompt logprob entry" && isBad(this) && index > 3) fail("prompt logprob");
          orig.call(this, index, entry);
        },
    );
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const run = async (overlapOutputs: boolean) => {
        const backend = new FakeBackend();
        backend.stepDelayMs = 1; // a step still runs while the last one's outputs are produced, as on a GPU
        const e = await engine({ overlapOutputs, maxNumBatchedTokens: 12 }, backend);
        const streams = Object.entries(prompts).map(([id, p]) =>
          e.generate({ requestId: id, promptTokenIds: p, params: id === "bad" ? badParams : base }),
        );
        const results = await Promise.all(
          streams.map(async (stream, i) => {
            const all: RequestOutput[] = [];
            let tokens = 0;
            for await (const out of stream) {
              all.push(out);
              tokens += out.tokenIdsDelta.length;
              if (i === 1 && failure === "dispose at abort" && tokens >= 3 && !out.finished) e.abort("bad");
            }
            return {
              all,
              last: all.at(-1)!,
              tokens: all.flatMap((o) => o.tokenIdsDelta),
              text: all.map((o) => o.textDelta).join(""),
              logprobs: all.reduce((n, o) => n + o.logprobsDelta.length, 0),
            };
          }),
        );
        await e.idle();
        return { e, results };
      };
      for (const overlapOutputs of [true, false]) {
        const label = `${failure}, overlap ${overlapOutputs}`;
        armed = false;
        const { results: baseline } = await run(overlapOutputs);
        armed = true;
        disposeCalls.clear();
        const { e, results } = await run(overlapOutputs);
        const [a, bad, c] = results;
        // A stop string seen while its next step runs ends bad ("stop" is out) before its constraint can be
        // disposed (when that step returns): the throw then goes to the process's warnings, not to a request.
        const afterItsEnd = failure === "dispose at a stop string" && overlapOutputs;
        assert.equal(bad!.last.finishReason, afterItsEnd ? "stop" : "error", label);
        if (afterItsEnd) {
          assert.equal(bad!.last.stopReason, stop, label);
          await new Promise((resolve) => setImmediate(resolve));
          assert.deepEqual(
            warnings.map((w) => [w.name, w.message]),
            [["AwqEngineWarning", "request bad: releasing it after its end threw: injected dispose failure"]],
            label,
          );
        } else {
          assert.match(bad!.last.error ?? "", /injected .* failure/, label);
        }
        warnings.length = 0;
        assert.equal(bad!.all.filter((o) => o.finished).length, 1, `${label}: one final output`);
        assert.equal(bad!.last.finished, true, label);
        assert.equal(bad!.last.completionTokens, bad!.tokens.length, `${label}: usage counts tokens sent`);
        assert.equal(bad!.logprobs, bad!.tokens.length, label);
        for (const [i, r] of [a!, c!].entries()) {
          const ref = baseline[i * 2]!;
          assert.deepEqual(r.tokens, ref.tokens, label);
          assert.equal(r.text, ref.text, label);
          assert.equal(r.logprobs, base.maxTokens, label);
          assert.equal(r.last.finishReason, "length", label);
          assert.equal(r.all.filter((o) => o.finished).length, 1, label);
        }
        if (badParams.badWords) {
          assert.deepEqual([...disposeCalls.values()], [1], `${label}: its constraint disposed once`);
        }
        const stats = e.stats();
        assert.equal(stats.freeBlocks, stats.numBlocks, `${label}: every block is back in the pool`);
        assert.equal(stats.running + stats.waiting, 0, label);
        armed = false;
        const after = await collect(e.generate({ promptTokenIds: prompts.a, params: base }));
        assert.deepEqual(after.tokens, baseline[0]!.tokens, `${label}: the engine keeps serving`);
      }
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, [], `${failure}: no unhandled rejection`);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      process.off("warning", onWarning);
      for (const undo of restore) undo();
    }
  }
});

test("a request ended by its own error counts only the tokens it sent: usage and vllm:generation_tokens_total", async () => {
  const params = { maxTokens: 10, temperature: 0, ignoreEos: true };
  const settleText = Sequence.prototype.settleText;
  // Choice 1's text side throws once it has 4 tokens: 3 were sent, the 4th (and, with outputs overlapping the
  // next step, a 5th) never are.
  Sequence.prototype.settleText = function (this: Sequence) {
    if (this.requestId === "job-1" && this.numOutputTokens >= 4) throw new Error("injected text failure");
    settleText.call(this);
  };
  try {
    for (const overlapOutputs of [true, false]) {
      const label = `overlap ${overlapOutputs}`;
      const e = await engine({ overlapOutputs });
      const metrics = new ServerMetrics(e, "m");
      const job = new GenerationJob(
        e,
        "job",
        [0, 1].map(() => ({ promptTokenIds: range(7, 60), params, promptIndex: 0 })),
        metrics,
      );
      const sent = [0, 0];
      const last: (RequestOutput | undefined)[] = [];
      for await (const { index, output } of job.events()) {
        sent[index] += output.tokenIdsDelta.length;
        last[index] = output;
      }
      assert.deepEqual(
        last.map((o) => o!.finishReason),
        ["length", "error"],
        label,
      );
      assert.deepEqual(sent, [10, 3], label);
      assert.equal(last[1]!.completionTokens, 3, `${label}: the failed choice's usage`);
      assert.equal(job.usage().completion_tokens, 13, label);
      const body = (await metrics.render()).body;
      assert.match(body, /^vllm:generation_tokens_total\{model_name="m",engine="0"\} 13$/m, label);
      assert.match(body, /^vllm:request_success_total\{[^}]*finished_reason="error"[^}]*\} 1$/m, label);
      metrics.close();
    }
  } finally {
    Sequence.prototype.settleText = settleText;
  }
});

test("an aborted request's blocks, the last step's included, stay in the prefix cache for a retry", async () => {
  // A: 32 prompt tokens, then decode; the abort comes while step 17 runs, the step that fills block 2 (positions
  // 32..47: A's first 16 generated tokens). That block's hashing is deferred past the step, so only the abort can
  // put it in the cache. B retries the conversation: A's prompt, those 16 tokens, and 5 new ones.
  class CountingBackend extends FakeBackend {
    steps = 0;
    onStep: ((step: number) => void) | null = null;
    override async step(batch: Parameters<FakeBackend["step"]>[0]) {
      this.steps++;
      this.onStep?.(this.steps);
      return super.step(batch);
    }
  }
  const prompt = range(32, 500);
  for (const overlapOutputs of [true, false]) {
    const label = `overlap ${overlapOutputs}`;
    const backend = new CountingBackend();
    const e = await engine({ overlapOutputs }, backend);
    // Launched after the 16th token's step returned (with chained steps, beside the step after it).
    const abortWith = e.chainsSteps ? 18 : 17;
    backend.onStep = (step) => {
      if (step === abortWith) e.abort("a");
    };
    const a = await collect(
      e.generate({ requestId: "a", promptTokenIds: prompt, params: { maxTokens: 100, ignoreEos: true } }),
    );
    backend.onStep = null;
    assert.equal(a.last.finishReason, "abort", label);
    assert.ok(a.tokens.length >= 16, `${label}: ${a.tokens.length} tokens before the abort`);
    const retry = [...prompt, ...a.tokens.slice(0, 16), ...range(5, 900)];
    const b = await collect(e.generate({ promptTokenIds: retry, params: { maxTokens: 2 } }));
    assert.equal(b.last.cachedTokens, 48, label);
    await e.idle();
    assert.equal(e.stats().freeBlocks, e.stats().numBlocks, label);
  }
});

test("a negative or fractional kvReserveTokens is refused, naming it", async () => {
  for (const kvReserveTokens of [-1, 1.5]) {
    const backend = new FakeBackend();
    await assert.rejects(engine({ kvReserveTokens }, backend), {
      message: `kvReserveTokens must be a non-negative integer, got ${kvReserveTokens}`,
    });
    assert.equal(backend.batches.length, 0);
  }
});

test("AWQ_TRACE_STEPS: the engine writes every admission and step, prompts as prefill and tokens as decode", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "awq-engine-trace-")), "trace.jsonl");
  process.env.AWQ_TRACE_STEPS = path;
  let e: Engine;
  try {
    e = await engine({ maxNumBatchedTokens: 16 });
  } finally {
    delete process.env.AWQ_TRACE_STEPS;
  }
  await Promise.all([
    collect(e.generate({ promptTokenIds: range(20), params: { maxTokens: 4, temperature: 0 } })),
    collect(e.generate({ promptTokenIds: range(5, 50), params: { maxTokens: 4, temperature: 0 } })),
  ]);
  await e.shutdown();
  const lines = readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  const adds = lines.filter((l) => l.ev === "add");
  assert.deepEqual(
    adds.map((l) => l.prompt),
    [20, 5],
  );
  const steps = lines.filter((l) => l.ev === "step");
  // 25 prompt tokens under a budget of 16, then one token a step: every prompt token and every decode counted once
  // (each request's last sampled token is never fed back).
  assert.equal(
    steps.reduce((n, l) => n + l.prefill, 0),
    25,
  );
  assert.equal(
    steps.reduce((n, l) => n + l.decode, 0),
    2 * 3,
  );
  assert.ok(steps[0].prefill === 16 && steps[0].decode === 0);
  const done = new Set(lines.filter((l) => l.ev === "done").map((l) => l.n));
  for (const s of steps) assert.ok(done.has(s.n), `step ${s.n} has its done line`);
});
