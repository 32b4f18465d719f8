/**
 * Chained decode steps (EngineOptions.asyncScheduling): a steady decode step is launched before the step it
 * continues has returned, its tokens filled in by the backend. Every output must equal the unchained engine's.
 */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { Engine, type EngineOptions } from "./engine.js";
import { FakeBackend, fakeModel } from "./fake-backend.test-helper.js";
import type { RequestOutput, SamplingParams } from "./types.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
let tokenizer: Tokenizer;

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
});

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => 1000 + from + i);

async function engine(opts: Partial<EngineOptions> = {}, backend = new FakeBackend()) {
  backend.stepDelayMs = 1; // a step still runs while the engine works, as on a GPU
  const e = await Engine.create({ model: fakeModel(256), backend, tokenizer, maxModelLen: 256, ...opts });
  return { e, backend };
}

interface Outcome {
  tokens: number[];
  text: string;
  finishReason: string | null;
  logprobs: number;
}

async function outcome(stream: AsyncIterable<RequestOutput>): Promise<Outcome> {
  const all: RequestOutput[] = [];
  for await (const out of stream) all.push(out);
  return {
    tokens: all.flatMap((o) => o.tokenIdsDelta),
    text: all.map((o) => o.textDelta).join(""),
    finishReason: all.at(-1)!.finishReason,
    logprobs: all.reduce((n, o) => n + o.logprobsDelta.length, 0),
  };
}

/** Runs the same requests on a chained and an unchained engine; returns both outcomes and backends. */
async function both(
  requests: { prompt: number[]; params: SamplingParams }[],
  opts: Partial<EngineOptions> = {},
) {
  const runs = [];
  for (const asyncScheduling of [true, false]) {
    const { e, backend } = await engine({ ...opts, asyncScheduling });
    const outcomes = await Promise.all(
      requests.map((r) => outcome(e.generate({ promptTokenIds: r.prompt, params: r.params }))),
    );
    await e.idle();
    assert.equal(
      e.stats().freeBlocks,
      e.stats().numBlocks,
      `asyncScheduling ${asyncScheduling}: blocks back`,
    );
    runs.push({ e, backend, outcomes });
  }
  return { chained: runs[0]!, unchained: runs[1]! };
}

test("steady decode steps are chained, with every token, text and logprob entry as one step at a time", async () => {
  const requests = [
    { prompt: range(5), params: { maxTokens: 9, temperature: 0, ignoreEos: true, logprobs: 2 } },
    { prompt: range(21, 100), params: { maxTokens: 17, temperature: 0.8, seed: 7, ignoreEos: true } },
    { prompt: range(40, 300), params: { maxTokens: 30, temperature: 0, ignoreEos: true } },
  ];
  const { chained, unchained } = await both(requests);
  assert.deepEqual(chained.outcomes, unchained.outcomes);
  assert.deepEqual(
    chained.outcomes.map((o) => o.tokens.length),
    [9, 17, 30],
  );
  assert.ok(chained.e.chainsSteps);
  assert.equal(chained.backend.maxInFlight, 2);
  assert.equal(unchained.backend.maxInFlight, 1);
  const chainedSteps = chained.backend.batches.filter((b) => b.prevTokenRows !== undefined);
  assert.ok(chainedSteps.length >= 20, `${chainedSteps.length} chained steps`);
  // A chained step ran each of its sequences' tokens at the next position, as the unchained engine's steps did.
  const positionsOf = (batches: typeof chainedSteps) =>
    batches.map((b) => [...b.tokenIds].map((id, t) => `${id}@${b.positions[t]}`).sort());
  assert.deepEqual(
    positionsOf(chained.backend.batches).flat().sort(),
    positionsOf(unchained.backend.batches).flat().sort(),
  );
});

test("a request arriving while steps are chained is admitted by the next step scheduled from scratch", async () => {
  for (const asyncScheduling of [true, false]) {
    const { e, backend } = await engine({ asyncScheduling });
    const first = e.generate({
      promptTokenIds: range(8),
      params: { maxTokens: 40, temperature: 0, ignoreEos: true },
    });
    const late: Promise<Outcome>[] = [];
    let seen = 0;
    const firstOutcome = (async () => {
      const tokens: number[] = [];
      for await (const out of first) {
        tokens.push(...out.tokenIdsDelta);
        if (++seen === 10) {
          late.push(
            outcome(
              e.generate({
                promptTokenIds: range(30, 500),
                params: { maxTokens: 12, temperature: 0, ignoreEos: true },
              }),
            ),
          );
        }
      }
      return tokens;
    })();
    const tokens = await firstOutcome;
    const second = await late[0]!;
    await e.idle();
    assert.equal(tokens.length, 40);
    assert.equal(second.tokens.length, 12);
    // Alone, the late request gives the same tokens.
    const { e: alone } = await engine({ asyncScheduling });
    const reference = await outcome(
      alone.generate({
        promptTokenIds: range(30, 500),
        params: { maxTokens: 12, temperature: 0, ignoreEos: true },
      }),
    );
    assert.deepEqual(second.tokens, reference.tokens, `asyncScheduling ${asyncScheduling}`);
    // Its prompt was prefilled in a step scheduled from scratch (never a chained one).
    const prefill = backend.batches.find((b) => b.tokenIds.length >= 30)!;
    assert.equal(prefill.prevTokenRows, undefined);
    assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
  }
});

test("a sequence whose next step depends on the token it gets is never in a chained step", async () => {
  // Penalties over its output, and min_tokens bans that lift with its length: their sampling settings are only
  // known once the running step returns.
  const cases: SamplingParams[] = [
    { maxTokens: 12, temperature: 0, ignoreEos: true, repetitionPenalty: 1.3 },
    { maxTokens: 12, temperature: 0, ignoreEos: true, frequencyPenalty: 0.5 },
    { maxTokens: 12, temperature: 0, minTokens: 12 }, // eos banned until the 12th token
  ];
  for (const params of cases) {
    // The other request ends first: the one with these settings then decodes alone, and is still never chained.
    const { chained, unchained } = await both([
      { prompt: range(6), params },
      { prompt: range(9, 50), params: { maxTokens: 6, temperature: 0, ignoreEos: true } },
    ]);
    assert.deepEqual(chained.outcomes, unchained.outcomes, JSON.stringify(params));
    assert.equal(chained.backend.maxInFlight, 1, JSON.stringify(params));
  }
  // min_tokens reached: the bans are gone, chaining resumes.
  const { chained } = await both([
    { prompt: range(6), params: { maxTokens: 20, temperature: 0, minTokens: 3 } },
  ]);
  assert.equal(chained.backend.maxInFlight, 2);
});

test("a stop token or max_tokens ending a sequence drops its row of the chained step; the others go on", async () => {
  const params = { maxTokens: 24, temperature: 0, ignoreEos: true };
  const { e: reference } = await engine({ asyncScheduling: false });
  const full = await outcome(reference.generate({ promptTokenIds: range(7), params }));
  const stopAt = 6;
  const stopTokenIds = [full.tokens[stopAt]!];
  const { chained, unchained } = await both([
    { prompt: range(7), params: { ...params, stopTokenIds } },
    { prompt: range(12, 70), params: { ...params, maxTokens: 5 } },
    { prompt: range(10, 140), params },
  ]);
  assert.deepEqual(chained.outcomes, unchained.outcomes);
  assert.equal(chained.outcomes[0]!.finishReason, "stop");
  assert.deepEqual(chained.outcomes[0]!.tokens, full.tokens.slice(0, stopAt + 1));
  assert.equal(chained.outcomes[1]!.finishReason, "length");
  assert.equal(chained.outcomes[2]!.tokens.length, 24);
  // The stop token's sequence had a row in the chained step launched beside the step that gave it.
  assert.ok(chained.backend.batches.length > unchained.backend.batches.length);
});

test("aborts while two steps are in flight end each stream once; the blocks come back", async () => {
  const { e } = await engine();
  const params = { maxTokens: 60, temperature: 0, ignoreEos: true, logprobs: 0 };
  const streams = [0, 1, 2, 3].map((i) =>
    e.generate({ requestId: `r${i}`, promptTokenIds: range(5 + i, i * 50), params }),
  );
  const results = await Promise.all(
    streams.map(async (stream, i) => {
      const all: RequestOutput[] = [];
      for await (const out of stream) {
        all.push(out);
        const tokens = all.reduce((n, o) => n + o.tokenIdsDelta.length, 0);
        if (i < 3 && tokens === 5 + 7 * i && !out.finished) e.abort(`r${i}`);
      }
      return all;
    }),
  );
  for (const [i, all] of results.entries()) {
    assert.equal(all.filter((o) => o.finished).length, 1, `r${i}: one final output`);
    assert.equal(all.at(-1)!.finishReason, i < 3 ? "abort" : "length");
    const tokens = all.reduce((n, o) => n + o.tokenIdsDelta.length, 0);
    const logprobs = all.reduce((n, o) => n + o.logprobsDelta.length, 0);
    assert.equal(logprobs, tokens, `r${i}: one logprob entry per token`);
  }
  await e.idle();
  assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
});

test("a backend failure fails the chained step after it too: those requests end with the error, later ones run", async () => {
  const { e, backend } = await engine();
  let steps = 0;
  backend.failWhen = () => ++steps === 6;
  const params = { maxTokens: 20, temperature: 0, ignoreEos: true };
  const failed = await Promise.all([
    outcome(e.generate({ promptTokenIds: range(5), params })),
    outcome(e.generate({ promptTokenIds: range(9, 40), params })),
  ]);
  for (const f of failed) assert.equal(f.finishReason, "error");
  backend.failWhen = null;
  const after = await outcome(e.generate({ promptTokenIds: range(5), params }));
  assert.equal(after.finishReason, "length");
  assert.equal(after.tokens.length, 20);
  await e.idle();
  assert.equal(e.stats().freeBlocks, e.stats().numBlocks);
});

test("AWQ_ENGINE_ASYNC takes 0 or 1 (unset or empty: on); any other value is refused by name", async () => {
  const saved = process.env.AWQ_ENGINE_ASYNC;
  try {
    for (const value of ["yes", "2", "true"]) {
      process.env.AWQ_ENGINE_ASYNC = value;
      await assert.rejects(engine(), /AWQ_ENGINE_ASYNC must be 0 or 1/, value);
    }
    for (const [value, on] of [
      ["0", false],
      ["1", true],
      ["", true],
    ] as const) {
      process.env.AWQ_ENGINE_ASYNC = value;
      const { e } = await engine();
      assert.equal(e.chainsSteps, on, JSON.stringify(value));
    }
  } finally {
    if (saved === undefined) delete process.env.AWQ_ENGINE_ASYNC;
    else process.env.AWQ_ENGINE_ASYNC = saved;
  }
});

test("a backend without chainedSteps is never sent a chained step", async () => {
  const backend = new FakeBackend();
  backend.chainedSteps = false;
  const { e } = await engine({}, backend);
  assert.equal(e.chainsSteps, false);
  const out = await outcome(
    e.generate({ promptTokenIds: range(5), params: { maxTokens: 10, temperature: 0, ignoreEos: true } }),
  );
  assert.equal(out.tokens.length, 10);
  assert.equal(backend.maxInFlight, 1);
});
