/**
 * use_beam_search (vLLM's extra parameter) on /v1/completions and /v1/chat/completions through the official
 * `openai` client, on the demo model: the choices are the library's beam search results, best first.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import type { LLM } from "../src/llm.js";
import { loadTestModel, MODEL_NAME, postJson, startTestServer, type TestServer } from "./server-harness.js";

const PROMPT = "In the beginning the Universe was created. This has made a lot of people very angry";
const JOKE = [{ role: "user" as const, content: "Tell me a joke." }];

let llm: LLM;
let server: TestServer;
let client: OpenAI;

before(async () => {
  llm = await loadTestModel();
  server = await startTestServer(llm);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

after(async () => {
  await server?.close();
  await llm?.dispose();
});

/** vLLM's extra body fields, which the client sends as given. */
type Extra = { use_beam_search: boolean; length_penalty?: number; ignore_eos?: boolean };

test("completions: n beams, best first, as the library's beam search, usage summed over choices", async () => {
  const res = await client.completions.create({
    model: MODEL_NAME,
    prompt: PROMPT,
    n: 3,
    max_tokens: 10,
    use_beam_search: true,
    length_penalty: 0.5,
  } as OpenAI.CompletionCreateParamsNonStreaming & Extra);
  const expected = await llm.beamSearch(PROMPT, { beamWidth: 3, maxTokens: 10, lengthPenalty: 0.5 });
  assert.equal(res.choices.length, 3);
  res.choices.forEach((choice, i) => {
    const sequence = expected.sequences[i]!;
    assert.equal(choice.index, i);
    assert.equal(choice.text, sequence.text);
    assert.equal(choice.finish_reason, sequence.finishReason);
  });
  assert.equal(new Set(res.choices.map((c) => c.text)).size, 3);
  const tokens = expected.sequences.reduce((sum, s) => sum + s.tokenIds.length, 0);
  assert.equal(res.usage?.completion_tokens, tokens);
  assert.equal(res.usage?.prompt_tokens, llm.encode(PROMPT).length);
});

test("completions: several prompts get n beams each; logprobs add up to the beam's logprob", async () => {
  const prompts = [PROMPT, "Fortune favours"];
  const res = await client.completions.create({
    model: MODEL_NAME,
    prompt: prompts,
    n: 2,
    max_tokens: 6,
    logprobs: 2,
    use_beam_search: true,
    ignore_eos: true,
  } as OpenAI.CompletionCreateParamsNonStreaming & Extra);
  assert.equal(res.choices.length, 4);
  for (const [p, prompt] of prompts.entries()) {
    const expected = await llm.beamSearch(prompt, { beamWidth: 2, maxTokens: 6, ignoreEos: true });
    for (let rank = 0; rank < 2; rank++) {
      const choice = res.choices[p * 2 + rank]!;
      const sequence = expected.sequences[rank]!;
      assert.equal(choice.index, p * 2 + rank);
      assert.equal(choice.text, sequence.text);
      const logprobs = choice.logprobs!;
      assert.equal(logprobs.tokens!.length, 6);
      const sum = logprobs.token_logprobs!.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - sequence.cumulativeLogprob) < 1e-3, `${sum} vs ${sequence.cumulativeLogprob}`);
      for (const top of logprobs.top_logprobs!) assert.ok(Object.keys(top).length <= 2);
    }
  }
});

test("chat: beams ending in EOS finish with stop; streamed the same as not", async () => {
  const body = { model: MODEL_NAME, messages: JOKE, n: 4, max_tokens: 40, use_beam_search: true };
  const res = await client.chat.completions.create(
    body as OpenAI.ChatCompletionCreateParamsNonStreaming & Extra,
  );
  const expected = await llm.beamSearch({ messages: JOKE }, { beamWidth: 4, maxTokens: 40 });
  assert.equal(res.choices.length, 4);
  res.choices.forEach((choice, i) => {
    assert.equal(choice.message.content, expected.sequences[i]!.text);
    assert.equal(choice.finish_reason, expected.sequences[i]!.finishReason);
  });
  assert.ok(
    res.choices.some((c) => c.finish_reason === "stop"),
    "this prompt has beams ending in EOS",
  );
  assert.ok(res.choices.some((c) => c.finish_reason === "length"));

  const stream = await client.chat.completions.create({
    ...body,
    stream: true,
    stream_options: { include_usage: true },
  } as OpenAI.ChatCompletionCreateParamsStreaming & Extra);
  const content = ["", "", "", ""];
  const finish: (string | null)[] = [null, null, null, null];
  let usage: OpenAI.CompletionUsage | null | undefined = null;
  for await (const chunk of stream) {
    for (const choice of chunk.choices) {
      content[choice.index] += choice.delta.content ?? "";
      if (choice.finish_reason) finish[choice.index] = choice.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.deepEqual(
    content,
    res.choices.map((c) => c.message.content),
  );
  assert.deepEqual(
    finish,
    res.choices.map((c) => c.finish_reason),
  );
  assert.deepEqual(usage?.completion_tokens, res.usage?.completion_tokens);
});

test("chat: logprobs of each beam's tokens", async () => {
  const res = await client.chat.completions.create({
    model: MODEL_NAME,
    messages: JOKE,
    n: 2,
    max_tokens: 5,
    logprobs: true,
    top_logprobs: 3,
    use_beam_search: true,
    ignore_eos: true,
  } as OpenAI.ChatCompletionCreateParamsNonStreaming & Extra);
  for (const choice of res.choices) {
    const content = choice.logprobs!.content!;
    assert.equal(content.length, 5);
    for (const entry of content) assert.equal(entry.top_logprobs.length, 3);
  }
});

test("refusals name the field: stream on completions, n above 10, a bad length_penalty", async () => {
  const url = `${server.url}/v1/completions`;
  const stream = await postJson(url, { prompt: PROMPT, use_beam_search: true, stream: true });
  assert.equal(stream.status, 400);
  assert.equal(stream.json.error.param, "stream");
  const wide = await postJson(url, { prompt: PROMPT, use_beam_search: true, n: 11 });
  assert.equal(wide.status, 400);
  assert.equal(wide.json.error.param, "n");
  const chatWide = await postJson(`${server.url}/v1/chat/completions`, {
    messages: JOKE,
    use_beam_search: true,
    n: 11,
  });
  assert.equal(chatWide.status, 400);
  assert.equal(chatWide.json.error.param, "n");
  const penalty = await postJson(url, { prompt: PROMPT, use_beam_search: true, length_penalty: "long" });
  assert.equal(penalty.status, 400);
  assert.match(JSON.stringify(penalty.json.error), /length_penalty/);
  // use_beam_search: false is plain sampling.
  const plain = await postJson(url, { prompt: PROMPT, use_beam_search: false, max_tokens: 2 });
  assert.equal(plain.status, 200);
});
