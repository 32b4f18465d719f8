/**
 * `awq serve --backend cuda` end to end: the demo model on the GPU behind the real server, answered through the
 * official `openai` client (chat streamed and not, completions with logprobs, seeded sampling).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { LLM } from "../../src/llm.js";
import { MODEL_NAME, modelDir, startTestServer, type TestServer } from "../server-harness.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();

describe("awq serve --backend cuda with the openai client", { skip: unavailable ?? false }, () => {
  let llm: LLM;
  let server: TestServer;
  let client: OpenAI;
  const messages = [
    { role: "system" as const, content: "You are a helpful assistant." },
    { role: "user" as const, content: "What does the fortune cookie say?" },
  ];

  before(async () => {
    llm = await LLM.load({ model: modelDir, backend: "cuda", maxModelLen: 512, gpuMemoryUtilization: 0.3 });
    server = await startTestServer(llm);
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });

  after(async () => {
    await server?.close();
    await llm?.dispose();
  });

  test("chat: streamed and non-streamed greedy replies agree", async () => {
    const reply = await client.chat.completions.create({
      model: MODEL_NAME,
      messages,
      max_tokens: 32,
      temperature: 0,
    });
    const text = reply.choices[0]!.message.content ?? "";
    assert.ok(text.length > 0, "the reply has text");
    assert.ok(["stop", "length"].includes(reply.choices[0]!.finish_reason));
    const stream = await client.chat.completions.create({
      model: MODEL_NAME,
      messages,
      max_tokens: 32,
      temperature: 0,
      stream: true,
    });
    let streamed = "";
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? "";
    assert.equal(streamed, text);
  });

  test("completions: logprobs, and seeded sampling is reproducible", async () => {
    const body = { model: MODEL_NAME, prompt: "The fortune cookie says", max_tokens: 16, logprobs: 3 };
    const greedy = await client.completions.create({ ...body, temperature: 0 });
    const lp = greedy.choices[0]!.logprobs!;
    assert.equal(lp.tokens!.length, greedy.usage!.completion_tokens);
    for (const [i, top] of lp.top_logprobs!.entries()) {
      const best = Math.max(...Object.values(top));
      assert.ok(
        lp.token_logprobs![i]! <= 0 && Math.abs(lp.token_logprobs![i]! - best) < 1e-3,
        "greedy = best",
      );
    }
    const a = await client.completions.create({ ...body, temperature: 0.9, top_p: 0.9, seed: 1234 });
    const b = await client.completions.create({ ...body, temperature: 0.9, top_p: 0.9, seed: 1234 });
    assert.equal(a.choices[0]!.text, b.choices[0]!.text);
  });

  test("concurrent chats are all answered", async () => {
    const replies = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        client.chat.completions.create({
          model: MODEL_NAME,
          messages: [{ role: "user", content: `Tell me fortune number ${i}.` }],
          max_tokens: 24,
          temperature: 0.7,
          seed: i,
        }),
      ),
    );
    for (const r of replies) assert.ok((r.choices[0]!.message.content ?? "").length > 0);
  });
});
