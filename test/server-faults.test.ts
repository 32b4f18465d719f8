/**
 * Faults at the HTTP edge: a table of bad requests (each a clear status and an error naming the field,
 * while a good request runs beside them untouched), client disconnects (blocks freed), overload (429 with
 * Retry-After, never a crash).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { LLM } from "../src/llm.js";
import {
  eventually,
  loadTestModel,
  MODEL_NAME,
  postJson,
  readSse,
  startTestServer,
  type TestServer,
} from "./server-harness.js";

const KEY = "faults-key";
const auth = { authorization: `Bearer ${KEY}` };
let llm: LLM;
let server: TestServer;

before(async () => {
  llm = await loadTestModel({ maxNumSeqs: 2 });
  server = await startTestServer(llm, { apiKeys: [KEY], maxQueue: 2 });
});

after(async () => {
  await server?.close();
  await llm?.dispose();
});

function allBlocksFree(): boolean {
  const stats = llm.engine.stats();
  return stats.running === 0 && stats.waiting === 0 && stats.freeBlocks === stats.numBlocks;
}

const user = [{ role: "user", content: "Tell me a fortune." }];

interface BadCase {
  name: string;
  path?: string;
  body: unknown;
  headers?: Record<string, string>;
  status: number;
  param: string | null;
}

const longPrompt = "Blessed are the meek, for they shall inherit the earth. ".repeat(40);

const BAD: BadCase[] = [
  {
    name: "missing key",
    body: { messages: user },
    headers: { authorization: "" },
    status: 401,
    param: "authorization",
  },
  {
    name: "wrong key",
    body: { messages: user },
    headers: { authorization: "Bearer nope" },
    status: 401,
    param: "authorization",
  },
  { name: "malformed JSON", body: '{"messages": [', status: 400, param: "body" },
  {
    name: "wrong content type",
    body: "hello",
    headers: { "content-type": "text/plain" },
    status: 415,
    param: "content-type",
  },
  { name: "empty body", body: "", status: 400, param: "body" },
  { name: "body is a list", body: [1, 2], status: 400, param: "body" },
  { name: "messages missing", body: { max_tokens: 4 }, status: 400, param: "messages" },
  { name: "empty messages", body: { messages: [] }, status: 400, param: "messages" },
  {
    name: "unknown role",
    body: { messages: [{ role: "wizard", content: "hi" }] },
    status: 400,
    param: "messages[0].role",
  },
  {
    name: "content is a number",
    body: { messages: [{ role: "user", content: 5 }] },
    status: 400,
    param: "messages[0].content",
  },
  {
    name: "image content part",
    body: { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] },
    status: 400,
    param: "messages[0].content[0].type",
  },
  { name: "negative max_tokens", body: { messages: user, max_tokens: -1 }, status: 400, param: "max_tokens" },
  { name: "huge max_tokens", body: { messages: user, max_tokens: 1e9 }, status: 400, param: "max_tokens" },
  {
    name: "max_tokens as a string",
    body: { messages: user, max_tokens: "10" },
    status: 400,
    param: "max_tokens",
  },
  {
    name: "max_completion_tokens 0",
    body: { messages: user, max_completion_tokens: 0 },
    status: 400,
    param: "max_completion_tokens",
  },
  { name: "n = 0", body: { messages: user, n: 0 }, status: 400, param: "n" },
  { name: "temperature -1", body: { messages: user, temperature: -1 }, status: 400, param: "temperature" },
  { name: "top_p 2", body: { messages: user, top_p: 2 }, status: 400, param: "top_p" },
  { name: "top_k 1.5", body: { messages: user, top_k: 1.5 }, status: 400, param: "top_k" },
  {
    name: "presence_penalty 5",
    body: { messages: user, presence_penalty: 5 },
    status: 400,
    param: "presence_penalty",
  },
  {
    name: "logit_bias outside vocab",
    body: { messages: user, logit_bias: { "999999": 5 } },
    status: 400,
    param: "logit_bias",
  },
  { name: "stop is a number", body: { messages: user, stop: 7 }, status: 400, param: "stop" },
  { name: "seed is a string", body: { messages: user, seed: "abc" }, status: 400, param: "seed" },
  { name: "stream is a string", body: { messages: user, stream: "yes" }, status: 400, param: "stream" },
  {
    name: "stream_options without stream",
    body: { messages: user, stream_options: { include_usage: true } },
    status: 400,
    param: "stream_options",
  },
  {
    name: "json_schema response format without its schema object",
    body: { messages: user, response_format: { type: "json_schema" } },
    status: 400,
    param: "response_format.json_schema",
  },
  {
    name: "a tool whose parameters use a schema keyword the grammar cannot enforce",
    body: {
      messages: user,
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object", not: {} } } }],
    },
    status: 400,
    param: "tools[0].function.parameters",
  },
  {
    name: "tool_choice required",
    body: { messages: user, tool_choice: "required" },
    status: 400,
    param: "tool_choice",
  },
  {
    name: "min_tokens > max_tokens",
    body: { messages: user, max_tokens: 2, min_tokens: 5 },
    status: 400,
    param: "min_tokens",
  },
  {
    name: "top_logprobs without logprobs",
    body: { messages: user, top_logprobs: 2 },
    status: 400,
    param: "top_logprobs",
  },
  { name: "unknown model", body: { messages: user, model: "gpt-4" }, status: 404, param: "model" },
  {
    name: "prompt over the context",
    path: "/v1/completions",
    body: { prompt: longPrompt },
    status: 400,
    param: "prompt",
  },
  {
    name: "prompt token outside vocab",
    path: "/v1/completions",
    body: { prompt: [1, 999999] },
    status: 400,
    param: "prompt",
  },
  { name: "prompt is a number", path: "/v1/completions", body: { prompt: 42 }, status: 400, param: "prompt" },
  {
    name: "completions logprobs 50",
    path: "/v1/completions",
    body: { prompt: "x", logprobs: 50 },
    status: 400,
    param: "logprobs",
  },
  {
    name: "/generate body form-encoded",
    path: "/generate",
    body: "prompt=hello",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    status: 415,
    param: "content-type",
  },
  {
    name: "beam search",
    path: "/generate",
    body: { prompt: "x", use_beam_search: true },
    status: 400,
    param: "use_beam_search",
  },
  {
    name: "detokenize outside vocab",
    path: "/detokenize",
    body: { tokens: [1, 999999] },
    status: 400,
    param: "tokens",
  },
];

async function streamText(body: object): Promise<string> {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(res.status, 200);
  const events = await readSse(res);
  assert.equal(events.at(-1), "[DONE]");
  return events
    .slice(0, -1)
    .map((e) => (e as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "")
    .join("");
}

test(`${BAD.length} bad requests each get the right status and name the field; a good one beside them is untouched`, async () => {
  assert.ok(BAD.length >= 20);
  const good = { messages: user, max_tokens: 24, temperature: 0, ignore_eos: true };
  const alone = await streamText(good);
  // What asks for nothing beyond text stays accepted.
  assert.equal(await streamText({ ...good, response_format: { type: "text" }, tool_choice: "none" }), alone);
  const beside = streamText(good);
  for (const bad of BAD) {
    const headers: Record<string, string> = { ...auth, ...bad.headers };
    if (headers.authorization === "") delete headers.authorization;
    const res = await postJson(`${server.url}${bad.path ?? "/v1/chat/completions"}`, bad.body, headers);
    assert.equal(res.status, bad.status, `${bad.name}: ${JSON.stringify(res.json)}`);
    const error = res.json.error;
    assert.ok(
      error && typeof error.message === "string" && error.message.length > 0,
      `${bad.name}: error body`,
    );
    assert.equal(typeof error.type, "string", `${bad.name}: error type`);
    assert.equal(error.param, bad.param, `${bad.name}: ${error.message}`);
  }
  assert.equal(await beside, alone, "the good request's output is unchanged by the bad ones");
  // Still serving.
  const after = await postJson(`${server.url}/v1/completions`, { prompt: "Fortune", max_tokens: 3 }, auth);
  assert.equal(after.status, 200);
  await eventually(allBlocksFree, 5_000, "every KV block to be free");
});

test("a client that disconnects mid-stream aborts its request and frees its blocks", async () => {
  const controller = new AbortController();
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ prompt: "In the beginning", max_tokens: 200, ignore_eos: true, stream: true }),
    signal: controller.signal,
  });
  const reader = res.body!.getReader();
  let received = "";
  while ((received.match(/data: /g) ?? []).length < 3) {
    const { value, done } = await reader.read();
    assert.ok(!done, "the stream runs until we leave");
    received += new TextDecoder().decode(value);
  }
  assert.equal(llm.engine.stats().running, 1);
  controller.abort();
  await eventually(allBlocksFree, 5_000, "the aborted request's blocks to be free");

  // The same for a non-streamed request.
  const gone = new AbortController();
  const pending = fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ prompt: "In the beginning", max_tokens: 200, ignore_eos: true }),
    signal: gone.signal,
  }).catch((err: unknown) => err);
  await eventually(() => llm.engine.stats().running === 1, 5_000, "the request to run");
  gone.abort();
  await pending;
  await eventually(allBlocksFree, 5_000, "the aborted request's blocks to be free");
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(
    metrics,
    /vllm:request_success_total\{model_name="tiny-chat",engine="0",finished_reason="abort"\} 2/,
  );
});

test("overload (--max-queue 2, 2 sequences at a time) gives 429 with Retry-After, not a crash", async () => {
  const results = await Promise.all(
    Array.from({ length: 14 }, () =>
      postJson(
        `${server.url}/v1/completions`,
        { prompt: "Fortune favours", max_tokens: 12, ignore_eos: true },
        auth,
      ),
    ),
  );
  const ok = results.filter((r) => r.status === 200);
  const refused = results.filter((r) => r.status === 429);
  assert.equal(ok.length + refused.length, results.length, JSON.stringify(results.map((r) => r.status)));
  assert.ok(refused.length >= 1, "some requests are refused");
  assert.ok(ok.length >= 2, "the admitted ones are served");
  for (const r of refused) {
    assert.ok(Number(r.headers.get("retry-after")) >= 1);
    assert.equal(r.json.error.code, "queue_full");
  }
  for (const r of ok) assert.equal(r.json.usage.completion_tokens, 12);
  await eventually(allBlocksFree, 5_000, "every KV block to be free");
  const later = await postJson(
    `${server.url}/v1/chat/completions`,
    { model: MODEL_NAME, messages: user, max_tokens: 3 },
    auth,
  );
  assert.equal(later.status, 200, "still serving");
});
