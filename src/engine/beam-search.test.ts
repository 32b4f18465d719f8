/**
 * Beam search on the demo model (models/tiny-chat-awq) on the CPU backend: the real engine, its real
 * logprobs. Scores are recomputed independently from prompt logprobs of each returned sequence.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { LLM } from "../llm.js";
import { beamScore, beamSearch } from "./beam-search.js";
import { InvalidParamError } from "./sampling-params.js";
import type { EngineClient, EngineRequest, RequestOutput } from "./types.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
const haveModel = existsSync(`${modelDir}/config.json`);
const JOKE = { messages: [{ role: "user" as const, content: "Tell me a joke." }] };
/** Longer than one KV block (16 tokens), so later steps can reuse the prompt's blocks. */
const LONG_PROMPT = "In the beginning the Universe was created. This has made a lot of people very angry";

let llm: LLM;
before(async () => {
  if (haveModel) llm = await LLM.load({ model: modelDir, backend: "cpu", maxModelLen: 256, numBlocks: 256 });
});
after(async () => {
  await llm?.dispose();
});

const eosIds = () => [...new Set([...llm.tokenizer.stopTokenIds, ...llm.config.eosTokenIds])];

/** Sum of the logprobs of `output` after `prompt`, from a separate request's prompt logprobs. */
async function recomputedLogprob(prompt: number[], output: number[]): Promise<number> {
  const [result] = await llm.generate([...prompt, ...output], {
    maxTokens: 1,
    temperature: 0,
    promptLogprobs: 0,
  });
  const entries = result!.promptLogprobs!;
  let sum = 0;
  for (let i = prompt.length; i < prompt.length + output.length; i++) {
    assert.equal(entries[i]?.tokenId, output[i - prompt.length]);
    sum += entries[i]!.logprob;
  }
  return sum;
}

test("width 1 equals greedy decoding", { skip: !haveModel && "needs models/tiny-chat-awq" }, async () => {
  const [greedy] = await llm.generate(LONG_PROMPT, { temperature: 0, maxTokens: 12, ignoreEos: true });
  const result = await llm.beamSearch(LONG_PROMPT, { beamWidth: 1, maxTokens: 12, ignoreEos: true });
  assert.equal(result.sequences.length, 1);
  assert.deepEqual(result.sequences[0]!.tokenIds, greedy!.tokenIds);
  assert.equal(result.sequences[0]!.text, greedy!.text);
  assert.equal(result.sequences[0]!.finishReason, "length");
});

test("width 3: three distinct sequences, best first, scores as recomputed from the model", {
  skip: !haveModel && "needs models/tiny-chat-awq",
}, async () => {
  const prompt = llm.encode(LONG_PROMPT);
  const lengthPenalty = 0.5;
  const result = await llm.beamSearch(prompt, { beamWidth: 3, maxTokens: 10, lengthPenalty });
  const { sequences } = result;
  assert.equal(sequences.length, 3);
  assert.equal(new Set(sequences.map((s) => s.tokenIds.join(","))).size, 3, "sequences must differ");
  const eos = new Set(eosIds());
  for (let i = 0; i < sequences.length; i++) {
    const s = sequences[i]!;
    if (i > 0) assert.ok(sequences[i - 1]!.score >= s.score, "sorted by score, best first");
    // A beam that ended in EOS scores the EOS's logprob too, though its tokens leave the EOS out.
    const scored = s.finishReason === "stop" ? [...s.tokenIds, s.stopReason!] : s.tokenIds;
    const cumulative = await recomputedLogprob(prompt, scored);
    assert.ok(Math.abs(cumulative - s.cumulativeLogprob) < 2e-3, `${cumulative} vs ${s.cumulativeLogprob}`);
    const length = prompt.length + scored.length - (eos.has(scored.at(-1)!) ? 1 : 0);
    assert.ok(Math.abs(s.score - s.cumulativeLogprob / length ** lengthPenalty) < 1e-9);
    assert.equal(s.text, llm.tokenizer.decode(s.tokenIds, { skipSpecialTokens: true }));
  }
  assert.equal(result.promptTokens, prompt.length);
});

test("EOS ends a beam (finish_reason stop); include_stop_str_in_output keeps the id, not the text", {
  skip: !haveModel && "needs models/tiny-chat-awq",
}, async () => {
  const eos = eosIds();
  const plain = await llm.beamSearch(JOKE, { beamWidth: 4, maxTokens: 40 });
  const stopped = plain.sequences.filter((s) => s.finishReason === "stop");
  assert.ok(stopped.length > 0, "this prompt has beams that end in EOS within 40 tokens");
  for (const s of stopped) {
    assert.ok(eos.includes(s.stopReason!));
    assert.ok(s.tokenIds.length < 40);
    assert.ok(!s.tokenIds.some((id) => eos.includes(id)), "no EOS inside a beam");
  }
  for (const s of plain.sequences.filter((s) => s.finishReason === "length")) {
    assert.equal(s.tokenIds.length, 40, "max_tokens respected");
    assert.equal(s.stopReason, null);
  }
  const kept = await llm.beamSearch(JOKE, { beamWidth: 4, maxTokens: 40, includeStopStrInOutput: true });
  assert.equal(kept.sequences.length, plain.sequences.length);
  kept.sequences.forEach((s, i) => {
    const p = plain.sequences[i]!;
    assert.equal(s.text, p.text);
    assert.equal(s.score, p.score, "a kept EOS does not count in the length");
    const expected = s.finishReason === "stop" ? [...p.tokenIds, s.stopReason!] : p.tokenIds;
    assert.deepEqual(s.tokenIds, expected);
  });
  // With ignore_eos nothing stops early.
  const ignoring = await llm.beamSearch(JOKE, { beamWidth: 4, maxTokens: 40, ignoreEos: true });
  assert.ok(ignoring.sequences.every((s) => s.finishReason === "length" && s.tokenIds.length === 40));
});

test("score: length counts the prompt and excludes a final EOS", () => {
  const eos = new Set([2]);
  assert.equal(beamScore(4, [7, 8], -3, eos, 1), -3 / 6);
  assert.equal(beamScore(4, [7, 2], -3, eos, 1), -3 / 5);
  assert.equal(beamScore(4, [7, 8], -3, eos, 2), -3 / 36);
  assert.equal(beamScore(4, [7, 8], -3, eos, 0), -3);
});

/** The real engine, with a record of when each step's requests were submitted and answered. */
class RecordingEngine implements EngineClient {
  readonly events: string[] = [];
  readonly cachedTokens: number[][] = [];
  submitted = 0;
  onSubmit: ((count: number) => void) | null = null;
  constructor(private readonly inner: EngineClient) {}
  generate(req: EngineRequest): AsyncIterable<RequestOutput> {
    const stream = this.inner.generate(req);
    this.submitted++;
    this.events.push(`submit:${req.promptTokenIds.length}`);
    this.onSubmit?.(this.submitted);
    const events = this.events;
    const cached = this.cachedTokens;
    return (async function* () {
      for await (const output of stream) {
        if (output.finished) {
          events.push(`done:${req.promptTokenIds.length}`);
          const length = req.promptTokenIds.length;
          cached[length] = [...(cached[length] ?? []), output.cachedTokens];
        }
        yield output;
      }
    })();
  }
  abort(id: string) {
    this.inner.abort(id);
  }
  stats() {
    return this.inner.stats();
  }
  shutdown(opts?: { graceMs?: number }) {
    return this.inner.shutdown(opts);
  }
}

test("a step's beams are submitted together and reuse the prompt's KV blocks", {
  skip: !haveModel && "needs models/tiny-chat-awq",
}, async () => {
  const prompt = llm.encode(LONG_PROMPT);
  assert.ok(prompt.length >= 16);
  const engine = new RecordingEngine(llm.engine);
  const result = await beamSearch(engine, llm.tokenizer, prompt, {
    beamWidth: 3,
    maxTokens: 5,
    eosTokenIds: eosIds(),
    ignoreEos: true,
  });
  assert.equal(result.sequences.length, 3);
  // Step s submits every beam (prompt + s tokens) before any of them is answered.
  let position = 0;
  for (let s = 0; s < 5; s++) {
    const length = prompt.length + s;
    const width = s === 0 ? 1 : 3;
    const step = engine.events.slice(position, position + 2 * width);
    assert.deepEqual(step.slice(0, width), Array(width).fill(`submit:${length}`), `step ${s}: ${step}`);
    assert.deepEqual(step.slice(width), Array(width).fill(`done:${length}`));
    position += 2 * width;
    if (s > 0) {
      const fullPromptBlocks = Math.floor(prompt.length / 16) * 16;
      for (const cached of engine.cachedTokens[length]!) assert.ok(cached >= fullPromptBlocks, `${cached}`);
    }
  }
});

test("abort via signal rejects with AbortError and frees the engine", {
  skip: !haveModel && "needs models/tiny-chat-awq",
}, async () => {
  const engine = new RecordingEngine(llm.engine);
  const controller = new AbortController();
  engine.onSubmit = (count) => {
    if (count === 5) controller.abort();
  };
  await assert.rejects(
    beamSearch(
      engine,
      llm.tokenizer,
      llm.encode(LONG_PROMPT),
      { beamWidth: 3, maxTokens: 50, eosTokenIds: eosIds() },
      controller.signal,
    ),
    { name: "AbortError" },
  );
  assert.ok(engine.submitted < 10, "no step starts after the abort");
  for (let i = 0; i < 200 && llm.engine.stats().running + llm.engine.stats().waiting > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(llm.engine.stats().running + llm.engine.stats().waiting, 0);
});

test("invalid params name the field", { skip: !haveModel && "needs models/tiny-chat-awq" }, async () => {
  const prompt = llm.encode("Hello");
  const run = (params: Partial<Parameters<typeof beamSearch>[3]>) =>
    beamSearch(llm.engine, llm.tokenizer, prompt, { beamWidth: 2, maxTokens: 4, eosTokenIds: [], ...params });
  await assert.rejects(
    run({ beamWidth: 11 }),
    (err) => err instanceof InvalidParamError && err.param === "n",
  );
  await assert.rejects(run({ beamWidth: 0 }), (err) => err instanceof InvalidParamError && err.param === "n");
  await assert.rejects(
    run({ maxTokens: 0 }),
    (err) => err instanceof InvalidParamError && err.param === "max_tokens",
  );
  await assert.rejects(
    llm.beamSearch(prompt, { beamWidth: 2, maxTokens: 256 }),
    (err) =>
      err instanceof InvalidParamError && err.param === "max_tokens" && /max-model-len/.test(err.message),
  );
  await assert.rejects(
    run({ lengthPenalty: Number.NaN }),
    (err) => err instanceof InvalidParamError && err.param === "length_penalty",
  );
});
