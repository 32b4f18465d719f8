/**
 * `--tokenizer-pool-size` (ServerOptions.tokenizerPoolSize): the server's tokenizer workers for long request texts,
 * 0 = on the main thread. The same long prompt gives the same tokens either way.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { LLM } from "../src/llm.js";
import { loadTestModel, MODEL_NAME, postJson, startTestServer } from "./server-harness.js";

let llm: LLM;
before(async () => {
  llm = await loadTestModel({ maxModelLen: 1024 });
});
after(async () => {
  await llm.dispose();
});

// Over the pool's inline limit (2,048 characters), so a worker encodes it when there is one.
const longPrompt = "The quick brown fox jumps over the lazy dog. ".repeat(50);

async function promptTokens(size: number): Promise<{ workers: number; tokens: number }> {
  const server = await startTestServer(llm, { tokenizerPoolSize: size });
  try {
    const res = await postJson(`${server.url}/v1/completions`, {
      model: MODEL_NAME,
      prompt: longPrompt,
      max_tokens: 1,
      temperature: 0,
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return { workers: server.app.awq.encoder.workerCount, tokens: res.json.usage.prompt_tokens };
  } finally {
    await server.close();
  }
}

test("the pool size sets the tokenizer workers; 0 encodes on the main thread, with the same tokens", async () => {
  assert.ok(longPrompt.length > 2048);
  const inline = await promptTokens(0);
  const pooled = await promptTokens(2);
  assert.equal(inline.workers, 0);
  assert.equal(pooled.workers, 2);
  assert.equal(inline.tokens, llm.tokenizer.encode(longPrompt).length);
  assert.equal(pooled.tokens, inline.tokens);
});
