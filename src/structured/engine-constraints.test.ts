/**
 * Constraints inside the engine on the demo model: the sampler's mask semantics (before / after logprobs), n > 1,
 * seeds, stop strings, preemption (a KV cache too small for the batch) and bad words, all with real grammars.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { sampleToken } from "../backend/sampler.js";
import { buildSamplingArrays } from "../backend/sampler-arrays.js";
import { LLM } from "../llm.js";
import type { ConstraintSpec } from "./constraint-spec.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
let llm: LLM;

before(async () => {
  // 16 blocks of 16 tokens: eight growing sequences do not fit at once, so the scheduler (vLLM's admission rule) preempts.
  llm = await LLM.load({
    model: modelDir,
    backend: "cpu",
    maxModelLen: 256,
    numBlocks: 16,
    kvReserveTokens: 0,
  });
});
after(async () => {
  await llm?.dispose();
});

const schema = {
  type: "object",
  properties: {
    word: { type: "string", maxLength: 16 },
    list: { type: "array", items: { type: "integer", minimum: 0, maximum: 99 }, maxItems: 6 },
  },
  required: ["word", "list"],
  additionalProperties: false,
};
const json: ConstraintSpec = { type: "json_schema", schema };
const prompt = (i: number) => `User: Give me JSON number ${i}.<|end_of_turn|>Assistant:`;

test("sampler: a grammar mask applies before the logprobs, allowed_token_ids after them", () => {
  const logits = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 3);
  const row = new Int32Array(2);
  row[0] = (1 << 3) | (1 << 9); // tokens 3 and 9
  const arrays = buildSamplingArrays([{ logprobs: 0 }, { logprobs: 0 }, { logprobs: 0 }]);
  Object.assign(arrays, {
    maskWords: 2,
    maskRow: Int32Array.from([0, 0, -1]),
    tokenMask: row,
    maskBeforeLogprobs: Uint8Array.from([1, 0, 0]),
  });
  const before = sampleToken(Float32Array.from(logits), arrays, 0);
  const afterMask = sampleToken(Float32Array.from(logits), arrays, 1);
  const free = sampleToken(Float32Array.from(logits), arrays, 2);
  const best = logits[3]! > logits[9]! ? 3 : 9;
  assert.equal(before.tokenId, best);
  assert.equal(afterMask.tokenId, best);
  const lse2 = Math.log(Math.exp(logits[3]!) + Math.exp(logits[9]!));
  assert.ok(
    Math.abs(before.logprob - (logits[best]! - lse2)) < 1e-5,
    "renormalized over the two allowed tokens",
  );
  let lse = 0;
  for (const l of logits) lse += Math.exp(l);
  assert.ok(Math.abs(afterMask.logprob - (logits[best]! - Math.log(lse))) < 1e-4, "raw logprob");
  assert.notEqual(free.tokenId, best, "the unmasked argmax is another token");
});

test("n > 1, seeds and preemption: every output valid, seeded outputs equal to the same request run alone", async () => {
  const preemptionsBefore = llm.engine.stats().numPreemptions ?? 0;
  const many = await llm.generate(
    Array.from({ length: 8 }, (_, i) => prompt(i)),
    { structuredOutput: json, temperature: 1, seed: 9, maxTokens: 100 },
  );
  assert.ok((llm.engine.stats().numPreemptions ?? 0) > preemptionsBefore, "the batch was preempted");
  const ajv = new Ajv();
  for (const r of many) {
    assert.equal(r.finishReason, "stop", r.text);
    assert.ok(ajv.validate(schema, JSON.parse(r.text)), r.text);
  }
  for (const i of [0, 5]) {
    const [alone] = await llm.generate(prompt(i), {
      structuredOutput: json,
      temperature: 1,
      seed: 9,
      maxTokens: 100,
    });
    assert.equal(
      alone!.text,
      many[i]!.text,
      `prompt ${i}: same seed, same output, batched and preempted or not`,
    );
  }
  const [a, b, c] = await llm.generate(prompt(1), {
    structuredOutput: json,
    n: 3,
    temperature: 1,
    seed: 4,
    maxTokens: 100,
  });
  for (const r of [a!, b!, c!]) assert.ok(ajv.validate(schema, JSON.parse(r.text)), r.text);
  assert.ok(new Set([a!.text, b!.text, c!.text]).size > 1, "n completions differ");
});

test("stop strings still cut a constrained output; bad_words steer it", async () => {
  const choice: ConstraintSpec = { type: "choice", choices: ["alpha beta gamma"] };
  const [cut] = await llm.generate(prompt(2), { structuredOutput: choice, stop: [" gamma"], seed: 1 });
  assert.equal(cut!.text, "alpha beta");
  assert.equal(cut!.finishReason, "stop");
  assert.equal(cut!.stopReason, " gamma");

  // vLLM's bad_words ban token sequences: the word's tokenizations at the start of a text or after a space
  // ("▁red"). allowed_token_ids keeps the model to the one-token spellings, so the ban decides.
  const two: ConstraintSpec = { type: "choice", choices: [" red", " blue"] };
  const red = llm.tokenizer.tokenToId("\u2581red")!;
  const allowedTokenIds = [red, llm.tokenizer.tokenToId("\u2581blue")!, 32000];
  const picked = new Set<string>();
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const [free] = await llm.generate(prompt(3), {
      structuredOutput: two,
      allowedTokenIds,
      temperature: 1,
      seed,
    });
    picked.add(free!.text);
    const [r] = await llm.generate(prompt(3), {
      structuredOutput: two,
      allowedTokenIds,
      badWords: ["red"],
      temperature: 1,
      seed,
    });
    assert.equal(r!.text, " blue", `seed ${seed}: ${r!.tokenIds}`);
  }
  assert.ok(picked.has(" red"), "without bad_words the model does pick red");
});
