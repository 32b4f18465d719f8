/**
 * The engine end to end on the real CPU backend and the demo model models/tiny-chat-awq: reference tokens,
 * batch equivalence (alone / together / chunked prefill / preemption), stops, abort, seeds.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CpuBackend } from "../src/backend/cpu/cpu-backend.js";
import { Engine, type EngineOptions } from "../src/engine/engine.js";
import type { RequestOutput, SamplingParams } from "../src/engine/types.js";
import { openModel } from "../src/model/load.js";
import type { ModelSource } from "../src/model/types.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const modelDir = `${repoRoot}models/tiny-chat-awq`;
/** reference.json's "awq" tokens belong to AutoAWQ's checkpoint (the repo's demo is awq-ts's own quantization). */
const autoAwqDir = `${repoRoot}../shared/models/tiny-chat-awq`;

interface ReferencePrompt {
  prompt: string;
  prompt_ids: number[];
  new_ids: number[];
}

/** The AWQ model's greedy reference: test/fixtures/reference.json, else ../shared/models/reference.json. */
function loadReference(): ReferencePrompt[] | null {
  for (const file of [
    `${repoRoot}test/fixtures/reference.json`,
    `${repoRoot}../shared/models/reference.json`,
  ]) {
    if (!existsSync(file)) continue;
    const json = JSON.parse(readFileSync(file, "utf8")) as { awq?: { greedy?: ReferencePrompt[] } };
    if (json.awq?.greedy) return json.awq.greedy;
  }
  return null;
}

const reference = loadReference();
let tokenizer: Tokenizer;
const models: ModelSource[] = [];
const engines: Engine[] = [];

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
});

after(async () => {
  for (const e of engines) {
    await e.shutdown();
    await e.backend.dispose();
  }
  for (const m of models) await m.checkpoint.close();
});

async function engine(
  opts: Partial<EngineOptions> = {},
  dir = modelDir,
  chainedSteps = false,
): Promise<Engine> {
  const model = await openModel(dir);
  models.push(model);
  const e = await Engine.create({
    model,
    backend: new CpuBackend({ chainedSteps }),
    tokenizer,
    maxModelLen: 128,
    maxNumSeqs: 8,
    ...opts,
  });
  engines.push(e);
  return e;
}

async function collect(stream: AsyncIterable<RequestOutput>) {
  const tokens: number[] = [];
  const deltas: string[] = [];
  let last: RequestOutput | undefined;
  for await (const out of stream) {
    tokens.push(...out.tokenIdsDelta);
    deltas.push(out.textDelta);
    last = out;
  }
  return { tokens, text: deltas.join(""), deltas, last: last! };
}

const PROMPTS = [
  "GPT4 User: Tell me a fortune.<|end_of_turn|>GPT4 Assistant:",
  "User: Quote a verse from the Bible.<|end_of_turn|>Assistant:",
  "You are OpenOrcaChat.<|end_of_turn|>User: Say something wise.<|end_of_turn|>Assistant:",
  "In the beginning God created",
];
const GREEDY: SamplingParams = { temperature: 0, maxTokens: 20, ignoreEos: true };

function assertAllBlocksFree(e: Engine): void {
  const stats = e.stats();
  assert.equal(stats.freeBlocks, stats.numBlocks, "every KV block is back in the pool");
  assert.equal(stats.running + stats.waiting, 0);
}

test("greedy tokens of the reference prompts match HF transformers (first 16)", async (t) => {
  if (reference === null)
    return t.skip("needs test/fixtures/reference.json or ../shared/models/reference.json");
  if (!existsSync(`${autoAwqDir}/config.json`))
    return t.skip(
      "needs ../shared/models/tiny-chat-awq (AutoAWQ's checkpoint, whose tokens reference.json holds)",
    );
  const e = await engine({}, autoAwqDir);
  const results = await Promise.all(
    reference.map((r) => {
      assert.deepEqual(tokenizer.encode(r.prompt), r.prompt_ids, "prompt tokenization");
      return collect(e.generate({ promptTokenIds: r.prompt_ids, params: { temperature: 0, maxTokens: 16 } }));
    }),
  );
  results.forEach((res, i) => {
    assert.deepEqual(res.tokens, reference[i]!.new_ids.slice(0, 16), reference[i]!.prompt);
  });
  assertAllBlocksFree(e);
});

test("alone, batched, chunked prefill and preemption give identical greedy tokens", async () => {
  const ids = PROMPTS.map((p) => tokenizer.encode(p));
  const base = await engine();
  const alone: number[][] = [];
  for (const promptTokenIds of ids)
    alone.push((await collect(base.generate({ promptTokenIds, params: GREEDY }))).tokens);
  const together = await Promise.all(
    ids.map((promptTokenIds) => collect(base.generate({ promptTokenIds, params: GREEDY }))),
  );
  assert.deepEqual(
    together.map((r) => r.tokens),
    alone,
    "batched",
  );
  assertAllBlocksFree(base);

  const chunked = await engine({ maxNumBatchedTokens: 7 });
  const chunkedResults = await Promise.all(
    ids.map((promptTokenIds) => collect(chunked.generate({ promptTokenIds, params: GREEDY }))),
  );
  assert.deepEqual(
    chunkedResults.map((r) => r.tokens),
    alone,
    "chunked prefill",
  );
  assertAllBlocksFree(chunked);

  // 4 sequences of up to 40 tokens need 12 blocks; 8 force preemption and recompute (with vLLM's admission rule: the
  // default keeps room to grow and would run them two at a time).
  const tight = await engine({ maxModelLen: 64, numBlocks: 8, kvReserveTokens: 0 });
  const tightResults = await Promise.all(
    ids.map((promptTokenIds) => collect(tight.generate({ promptTokenIds, params: GREEDY }))),
  );
  assert.deepEqual(
    tightResults.map((r) => r.tokens),
    alone,
    "preemption",
  );
  assert.ok((tight.stats().numPreemptions ?? 0) > 0, "the small cache preempted");
  assertAllBlocksFree(tight);
});

test("chained decode steps on the CPU backend: the same greedy and seeded tokens, stop strings cut the same", async () => {
  const ids = PROMPTS.map((p) => tokenizer.encode(p));
  const runs = [];
  for (const chained of [false, true]) {
    const e = await engine({}, modelDir, chained);
    assert.equal(e.chainsSteps, chained);
    const results = await Promise.all([
      ...ids.map((promptTokenIds) => collect(e.generate({ promptTokenIds, params: GREEDY }))),
      collect(
        e.generate({
          promptTokenIds: ids[0]!,
          params: { temperature: 0.9, seed: 11, maxTokens: 12, ignoreEos: true, logprobs: 2 },
        }),
      ),
      collect(e.generate({ promptTokenIds: ids[3]!, params: { ...GREEDY, stop: [" the"] } })),
    ]);
    assertAllBlocksFree(e);
    runs.push(results.map((r) => ({ tokens: r.tokens, text: r.text, finish: r.last.finishReason })));
  }
  assert.deepEqual(runs[1], runs[0]);
});

test("stop strings split across tokens are cut, and never streamed", async () => {
  const e = await engine();
  const promptTokenIds = tokenizer.encode(PROMPTS[0]!);
  const full = await collect(e.generate({ promptTokenIds, params: GREEDY }));
  // A stop string that starts inside one token and ends two tokens later.
  const stop = full.text.slice(full.text.indexOf("got") + 1, full.text.indexOf("got") + 9);
  assert.equal(stop.length, 8);
  const cut = await collect(e.generate({ promptTokenIds, params: { ...GREEDY, stop: [stop] } }));
  assert.equal(cut.last.finishReason, "stop");
  assert.equal(cut.last.stopReason, stop);
  assert.equal(cut.text, full.text.slice(0, full.text.indexOf(stop)));
  // The streamed deltas add up to exactly the cut text: no piece of the stop string went out first.
  const kept = await collect(
    e.generate({ promptTokenIds, params: { ...GREEDY, stop: [stop], includeStopStrInOutput: true } }),
  );
  assert.equal(kept.text, full.text.slice(0, full.text.indexOf(stop) + stop.length));
  assertAllBlocksFree(e);
});

test("eos stops; min_tokens holds it off; max_tokens ends with length", async () => {
  const e = await engine();
  const promptTokenIds = tokenizer.encode(PROMPTS[2]!);
  const natural = await collect(e.generate({ promptTokenIds, params: { temperature: 0 } }));
  assert.equal(natural.last.finishReason, "stop");
  const eosAt = natural.tokens.length;
  assert.ok(tokenizer.stopTokenIds.includes(natural.tokens.at(-1)!));
  assert.ok(!natural.text.includes("<|end_of_turn|>"));

  const held = await collect(
    e.generate({ promptTokenIds, params: { temperature: 0, minTokens: eosAt + 5, maxTokens: eosAt + 5 } }),
  );
  assert.equal(held.tokens.length, eosAt + 5);
  assert.deepEqual(held.tokens.slice(0, eosAt - 1), natural.tokens.slice(0, eosAt - 1));
  assert.ok(
    held.tokens.every((id) => !tokenizer.stopTokenIds.includes(id)),
    "no stop id before min_tokens",
  );
  assert.equal(held.last.finishReason, "length");

  const short = await collect(e.generate({ promptTokenIds, params: { temperature: 0, maxTokens: 3 } }));
  assert.deepEqual(short.tokens, natural.tokens.slice(0, 3));
  assert.equal(short.last.finishReason, "length");
  assert.equal(short.last.completionTokens, 3);
  assertAllBlocksFree(e);
});

test("a seeded sampled request is reproducible alone or batched; another seed differs", async () => {
  const e = await engine();
  const promptTokenIds = tokenizer.encode(PROMPTS[3]!);
  const run = (seed: number) =>
    collect(e.generate({ promptTokenIds, params: { temperature: 1, maxTokens: 24, seed, ignoreEos: true } }));
  const first = await run(7);
  const [again, other] = await Promise.all([run(7), run(8)]);
  assert.deepEqual(again.tokens, first.tokens);
  assert.notDeepEqual(other.tokens, first.tokens);
  assertAllBlocksFree(e);
});

test("abort mid-generation frees every block", async () => {
  const e = await engine();
  const controller = new AbortController();
  const promptTokenIds = tokenizer.encode(PROMPTS[1]!);
  const stream = e.generate({
    promptTokenIds,
    params: { maxTokens: 100, ignoreEos: true },
    signal: controller.signal,
  });
  let count = 0;
  let last: RequestOutput | undefined;
  for await (const out of stream) {
    last = out;
    if (++count === 3) controller.abort();
  }
  assert.equal(last?.finishReason, "abort");
  assert.ok(last!.completionTokens < 100);
  await e.idle();
  assertAllBlocksFree(e);
});

test("prompt logprobs: every prompt token but the first, the same with chunked prefill", async () => {
  const promptTokenIds = tokenizer.encode(PROMPTS[2]!);
  const params: SamplingParams = { temperature: 0, maxTokens: 2, promptLogprobs: 0, logprobs: 0 };
  const whole = await engine();
  const chunked = await engine({ maxNumBatchedTokens: 6 });
  const [a, b] = await Promise.all(
    [whole, chunked].map(async (e) => {
      let entries: RequestOutput["promptLogprobs"];
      for await (const out of e.generate({ promptTokenIds, params })) entries ??= out.promptLogprobs;
      return entries!;
    }),
  );
  assert.equal(a.length, promptTokenIds.length);
  assert.equal(a[0], null);
  for (let i = 1; i < promptTokenIds.length; i++) {
    assert.equal(a[i]?.tokenId, promptTokenIds[i]);
    assert.ok(a[i]!.logprob < 0 && Number.isFinite(a[i]!.logprob), `position ${i}`);
    assert.ok(
      Math.abs(a[i]!.logprob - b[i]!.logprob) < 1e-4,
      `position ${i}: ${a[i]!.logprob} vs ${b[i]?.logprob}`,
    );
  }
  assertAllBlocksFree(chunked);
});
