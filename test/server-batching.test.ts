/**
 * Continuous batching seen from HTTP: concurrent greedy requests give exactly the tokens each gives alone,
 * every KV block is free afterwards, and a shared prefix is served from the prefix cache with the same output.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { LLM } from "../src/llm.js";
import { eventually, loadTestModel, postJson, startTestServer, type TestServer } from "./server-harness.js";

let llm: LLM;
let server: TestServer;

before(async () => {
  llm = await loadTestModel({ maxNumSeqs: 16 });
  server = await startTestServer(llm);
});

after(async () => {
  await server?.close();
  await llm?.dispose();
});

const SEEDS = [
  "In the beginning",
  "And God said",
  "Fortune favours the bold",
  "A friend in need",
  "The Lord is my shepherd; I shall not want.",
  "You will find",
  "Blessed are the meek, for they shall inherit",
  "Your lucky number",
];

/** Greedy completion with the chosen tokens spelled out (logprobs: 0). */
async function complete(prompt: string, maxTokens: number): Promise<{ text: string; tokens: string[] }> {
  const res = await postJson(`${server.url}/v1/completions`, {
    prompt,
    max_tokens: maxTokens,
    temperature: 0,
    logprobs: 0,
  });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  const choice = res.json.choices[0];
  return { text: choice.text, tokens: choice.logprobs.tokens };
}

function allBlocksFree(): boolean {
  const stats = llm.engine.stats();
  return stats.running === 0 && stats.waiting === 0 && stats.freeBlocks === stats.numBlocks;
}

test("16 concurrent greedy requests of different lengths give the tokens each gives alone", async () => {
  const jobs = Array.from({ length: 16 }, (_, i) => ({
    prompt: `${SEEDS[i % SEEDS.length]}${i >= SEEDS.length ? " and then" : ""}`,
    maxTokens: 3 + ((i * 5) % 17),
  }));
  const alone = [];
  for (const job of jobs) alone.push(await complete(job.prompt, job.maxTokens));
  const together = await Promise.all(jobs.map((job) => complete(job.prompt, job.maxTokens)));
  for (let i = 0; i < jobs.length; i++) {
    assert.deepEqual(
      together[i],
      alone[i],
      `request ${i} (${JSON.stringify(jobs[i]!.prompt)}) differs in a batch`,
    );
  }
  await eventually(allBlocksFree, 5_000, "every KV block to be free");
});

test("a request sharing a long prefix reports cached tokens and gives the same output", async () => {
  const prefix = `${"The Lord is my shepherd; I shall not want. He maketh me to lie down in green pastures. ".repeat(3)}`;
  const messages = (question: string) => [
    { role: "system", content: prefix },
    { role: "user", content: question },
  ];
  const chat = async (question: string) => {
    const res = await postJson(`${server.url}/v1/chat/completions`, {
      messages: messages(question),
      max_tokens: 8,
      temperature: 0,
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return res.json as {
      choices: { message: { content: string } }[];
      usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
    };
  };
  // A prefix nobody sent before: the first answer is computed without the cache.
  const first = await chat("What comes next?");
  assert.equal(first.usage.prompt_tokens_details.cached_tokens, 0);
  assert.ok(first.usage.prompt_tokens > 64, "the prompt spans several KV blocks");

  const again = await chat("What comes next?");
  const fullBlocks = Math.floor((first.usage.prompt_tokens - 1) / 16) * 16;
  assert.ok(
    again.usage.prompt_tokens_details.cached_tokens >= fullBlocks - 16,
    "full blocks came from the cache",
  );
  assert.equal(
    again.choices[0]!.message.content,
    first.choices[0]!.message.content,
    "same output from the cache",
  );

  const other = await chat("Who wrote this?");
  assert.ok(other.usage.prompt_tokens_details.cached_tokens >= 64, "the shared prefix came from the cache");
  await eventually(allBlocksFree, 5_000, "every KV block to be free");
});
