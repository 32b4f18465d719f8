/**
 * The server through the official `openai` client (and plain fetch for the vLLM routes) on the demo model:
 * chat streamed and not, completions with logprobs, the model list, auth, tokenize, /generate, /metrics.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import type { LLM } from "../src/llm.js";
import {
  loadTestModel,
  MODEL_NAME,
  postJson,
  readSse,
  startTestServer,
  type TestServer,
} from "./server-harness.js";

const API_KEY = "test-key-1";
let llm: LLM;
let server: TestServer;
let client: OpenAI;

before(async () => {
  llm = await loadTestModel();
  server = await startTestServer(llm, { apiKeys: [API_KEY, "second-key"] });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: API_KEY, maxRetries: 0 });
});

after(async () => {
  await server?.close();
  await llm?.dispose();
});

const messages = [
  { role: "system" as const, content: "You are a helpful assistant." },
  { role: "user" as const, content: "What does the fortune cookie say?" },
];

test("chat: non-streamed and streamed greedy replies are the same text", async () => {
  const reply = await client.chat.completions.create({
    model: MODEL_NAME,
    messages,
    max_tokens: 24,
    temperature: 0,
  });
  assert.equal(reply.object, "chat.completion");
  assert.equal(reply.model, MODEL_NAME);
  const choice = reply.choices[0]!;
  assert.equal(choice.message.role, "assistant");
  assert.ok((choice.message.content ?? "").length > 0, "the reply has text");
  assert.ok(["stop", "length"].includes(choice.finish_reason));
  assert.ok(reply.usage!.prompt_tokens > 10);
  assert.equal(reply.usage!.total_tokens, reply.usage!.prompt_tokens + reply.usage!.completion_tokens);
  assert.ok(reply.usage!.completion_tokens <= 24);

  const stream = await client.chat.completions.create({
    model: MODEL_NAME,
    messages,
    max_tokens: 24,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant", "a role chunk comes first");
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
  assert.equal(text, choice.message.content, "streamed text == non-streamed text");
  const finishChunks = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(finishChunks.length, 1);
  assert.equal(finishChunks[0]!.choices[0]!.finish_reason, choice.finish_reason);
  const last = chunks.at(-1)!;
  assert.equal(last.choices.length, 0, "the usage chunk comes last, with no choices");
  assert.deepEqual(last.usage?.completion_tokens, reply.usage!.completion_tokens);
});

test("chat: n = 2 with a seed gives two choices; logprobs in the chat format", async () => {
  const reply = await client.chat.completions.create({
    model: MODEL_NAME,
    messages,
    max_tokens: 6,
    n: 2,
    seed: 7,
    temperature: 0.8,
    logprobs: true,
    top_logprobs: 3,
  });
  assert.equal(reply.choices.length, 2);
  assert.deepEqual(
    reply.choices.map((c) => c.index),
    [0, 1],
  );
  for (const choice of reply.choices) {
    const content = choice.logprobs!.content!;
    assert.ok(content.length >= 1);
    for (const entry of content) {
      assert.ok(entry.logprob <= 0);
      assert.equal(entry.top_logprobs.length, 3);
      assert.ok(entry.top_logprobs[0]!.logprob >= entry.top_logprobs[2]!.logprob, "top logprobs best first");
    }
  }
  assert.equal(
    reply.usage!.completion_tokens,
    reply.choices.reduce((n, c) => n + c.logprobs!.content!.length, 0),
  );
  const again = await client.chat.completions.create({
    model: MODEL_NAME,
    messages,
    max_tokens: 6,
    n: 2,
    seed: 7,
    temperature: 0.8,
  });
  assert.deepEqual(
    again.choices.map((c) => c.message.content),
    reply.choices.map((c) => c.message.content),
    "a seeded request reproduces",
  );
});

test("completions: logprobs N in the completions format, echo, and the token-id prompt form", async () => {
  const prompt = "In the beginning God created";
  const reply = await client.completions.create({
    model: MODEL_NAME,
    prompt,
    max_tokens: 8,
    temperature: 0,
    logprobs: 2,
  });
  const choice = reply.choices[0]!;
  const lp = choice.logprobs!;
  assert.equal(lp.tokens!.length, reply.usage!.completion_tokens);
  assert.equal(lp.token_logprobs!.length, lp.tokens!.length);
  assert.equal(lp.top_logprobs!.length, lp.tokens!.length);
  assert.equal(lp.text_offset![0], 0);
  for (const [i, top] of lp.top_logprobs!.entries()) {
    assert.ok(
      Object.keys(top).length >= 1 && Object.keys(top).length <= 3,
      "top 2 + the sampled token at most",
    );
    assert.equal(
      top[lp.tokens![i]!],
      lp.token_logprobs![i],
      "the sampled token is always among top_logprobs",
    );
  }
  assert.equal(lp.tokens!.join(""), choice.text, "token texts spell the completion");

  // logprobs: 0 gives each sampled token's own logprob alone, as vLLM does.
  const zero = await client.completions.create({
    model: MODEL_NAME,
    prompt,
    max_tokens: 4,
    temperature: 0,
    logprobs: 0,
  });
  const zlp = zero.choices[0]!.logprobs!;
  assert.equal(zlp.top_logprobs!.length, zlp.tokens!.length);
  for (const [i, top] of zlp.top_logprobs!.entries()) {
    assert.deepEqual(top, { [zlp.tokens![i]!]: zlp.token_logprobs![i] });
  }

  // A stop string that the text keeps almost matching holds text back; offsets still follow the tokens.
  const heldBack = await client.completions.create({
    model: MODEL_NAME,
    prompt,
    max_tokens: 8,
    temperature: 0,
    logprobs: 2,
    stop: `${choice.text.slice(1)}#never`,
  });
  assert.equal(heldBack.choices[0]!.text, choice.text);
  assert.deepEqual(
    heldBack.choices[0]!.logprobs!.text_offset,
    lp.text_offset,
    "held-back text, same offsets",
  );

  // An empty prompt (BOS only): the completion starts the text, and its token texts still spell it.
  const fromNothing = await client.completions.create({
    model: MODEL_NAME,
    prompt: "",
    max_tokens: 4,
    temperature: 0,
    logprobs: 1,
  });
  const nothingLp = fromNothing.choices[0]!.logprobs!;
  assert.equal(nothingLp.tokens!.join(""), fromNothing.choices[0]!.text);
  assert.deepEqual(
    nothingLp.text_offset,
    nothingLp.tokens!.map((_, i) => nothingLp.tokens!.slice(0, i).join("").length),
  );

  const echoed = await client.completions.create({
    model: MODEL_NAME,
    prompt,
    max_tokens: 8,
    temperature: 0,
    echo: true,
  });
  assert.equal(echoed.choices[0]!.text, prompt + choice.text);

  const echoLogprobs = await client.completions.create({
    model: MODEL_NAME,
    prompt,
    max_tokens: 8,
    temperature: 0,
    echo: true,
    logprobs: 1,
  });
  const echoLp = echoLogprobs.choices[0]!.logprobs!;
  const promptLength = llm.tokenizer.encode(prompt).length;
  assert.equal(echoLp.tokens!.length, promptLength + lp.tokens!.length, "prompt tokens come first");
  assert.equal(echoLp.token_logprobs![0], null, "nothing predicts the first prompt token");
  assert.ok(echoLp.token_logprobs!.slice(1).every((v) => typeof v === "number" && v <= 0));
  assert.deepEqual(echoLp.tokens!.slice(promptLength), lp.tokens);
  assert.equal(echoLp.text_offset![promptLength], prompt.length, "completion offsets start after the prompt");
  const echoText = echoLogprobs.choices[0]!.text;
  for (let i = 1; i < promptLength; i++) {
    const token = echoLp.tokens![i]!;
    const at = echoLp.text_offset![i]!;
    assert.equal(echoText.slice(at, at + token.length), token, `prompt token ${i} sits at its text_offset`);
    assert.ok(token in echoLp.top_logprobs![i]!, `prompt token ${i} is among its top_logprobs`);
  }

  // Special tokens inside the prompt: the tokenizer puts a space after each ("<|end_of_turn|>GPT4" decodes as
  // "<|end_of_turn|> GPT4"); offsets still point into the echoed text, at each token less that space.
  const turns = "GPT4 User: Hi there<|end_of_turn|>GPT4 Assistant: Hello <|end_of_turn|> again";
  const turnsReply = await client.completions.create({
    model: MODEL_NAME,
    prompt: turns,
    max_tokens: 2,
    temperature: 0,
    echo: true,
    logprobs: 0,
  });
  const turnsLp = turnsReply.choices[0]!.logprobs!;
  const turnsText = turnsReply.choices[0]!.text;
  const turnsLength = llm.tokenizer.encode(turns).length;
  for (let i = 1; i < turnsLength; i++) {
    const token = turnsLp.tokens![i]!;
    const at = turnsLp.text_offset![i]!;
    assert.ok(
      turnsText.startsWith(token, at) || (token.startsWith(" ") && turnsText.startsWith(token.slice(1), at)),
      `prompt token ${i} ${JSON.stringify(token)} sits at its text_offset ${at}`,
    );
    assert.ok(at >= turnsLp.text_offset![i - 1]!, "offsets never go back");
  }
  assert.equal(turnsLp.text_offset![turnsLength], turns.length, "completion offsets start after the prompt");

  const ids = llm.tokenizer.encode(prompt);
  const byIds = await client.completions.create({
    model: MODEL_NAME,
    prompt: ids,
    max_tokens: 8,
    temperature: 0,
  });
  assert.equal(byIds.choices[0]!.text, choice.text, "token ids and text give the same completion");
  const byIdsEcho = await client.completions.create({
    model: MODEL_NAME,
    prompt: ids,
    max_tokens: 8,
    temperature: 0,
    echo: true,
  });
  assert.equal(byIdsEcho.choices[0]!.text, prompt + choice.text, "the echo of token ids has no <s>");

  const two = await client.completions.create({
    model: MODEL_NAME,
    prompt: [prompt, "Fortune favours"],
    max_tokens: 4,
    temperature: 0,
    n: 2,
  });
  assert.deepEqual(
    two.choices.map((c) => c.index),
    [0, 1, 2, 3],
  );
  assert.equal(two.choices[0]!.text, two.choices[1]!.text, "greedy choices of one prompt agree");
});

test("completions stream: text chunks, finish_reason, usage, [DONE]", async () => {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({
      prompt: "Fortune favours",
      max_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const events = await readSse(res);
  assert.equal(events.at(-1), "[DONE]");
  const usage = (events.at(-2) as { usage: { completion_tokens: number } }).usage;
  assert.ok(usage.completion_tokens >= 1);
  const finish = events.filter(
    (e) =>
      typeof e === "object" && (e as { choices: { finish_reason?: string }[] }).choices?.[0]?.finish_reason,
  );
  assert.equal(finish.length, 1);
});

test("stream_options.continuous_usage_stats (vLLM): every chat and completions chunk carries usage so far", async () => {
  const post = (path: string, body: object) =>
    fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({
        ...body,
        max_tokens: 4,
        ignore_eos: true,
        // Greedy: a sampled token that completes no character (part of a UTF-8 sequence) goes out with the next
        // one, so a random draw could give fewer than 4 chunks.
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true, continuous_usage_stats: true },
      }),
    });
  type Chunk = { choices: unknown[]; usage?: { prompt_tokens: number; completion_tokens: number } };
  for (const [path, body] of [
    ["/v1/chat/completions", { messages }],
    ["/v1/completions", { prompt: "Fortune favours" }],
  ] as const) {
    const chunks = (await readSse(await post(path, body))).filter((e) => typeof e === "object") as Chunk[];
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    assert.ok(withChoices.length >= 4, path);
    for (const chunk of withChoices) assert.ok(chunk.usage, `${path}: a chunk without usage`);
    const counts = withChoices.map((c) => c.usage!.completion_tokens);
    assert.equal(counts.at(-1), 4, path);
    assert.ok(
      counts.every((n, i) => i === 0 || n >= counts[i - 1]!),
      `${path}: counts grow: ${counts}`,
    );
    assert.equal(chunks.at(-1)!.choices.length, 0, `${path}: the final usage chunk is still sent`);
    assert.equal(withChoices[0]!.usage!.prompt_tokens, chunks.at(-1)!.usage!.prompt_tokens);
  }
});

test("the model list, one model by name, and 404 for an unknown one", async () => {
  const list = await client.models.list();
  assert.deepEqual(
    list.data.map((m) => m.id),
    [MODEL_NAME],
  );
  const one = await client.models.retrieve(MODEL_NAME);
  assert.equal(one.id, MODEL_NAME);
  await assert.rejects(
    client.models.retrieve("gpt-4"),
    (err: unknown) => (err as { status?: number }).status === 404,
  );
});

test("auth: a second key works, a wrong one gets 401; /health, /version and /metrics stay open", async () => {
  const other = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "second-key", maxRetries: 0 });
  assert.equal((await other.models.list()).data.length, 1);
  const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "nope", maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (err: unknown) => (err as { status?: number }).status === 401);
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  assert.match(await (await fetch(`${server.url}/version`)).text(), /"version"/);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  for (const name of [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:time_to_first_token_seconds",
    "vllm:time_per_output_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
  ]) {
    assert.ok(metrics.includes(name), `/metrics has ${name}`);
  }
  assert.match(metrics, /vllm:generation_tokens_total\{model_name="tiny-chat",engine="0"\} [1-9]/);
});

test("chat: the `developer` role (OpenAI's newer system role) is the template's system role", async () => {
  const asDeveloper = [{ role: "developer" as const, content: messages[0]!.content }, messages[1]!];
  const reply = await client.chat.completions.create({
    model: MODEL_NAME,
    messages: asDeveloper,
    max_tokens: 4,
    temperature: 0,
  });
  const asSystem = await client.chat.completions.create({
    model: MODEL_NAME,
    messages,
    max_tokens: 4,
    temperature: 0,
  });
  assert.equal(reply.usage!.prompt_tokens, asSystem.usage!.prompt_tokens);
  assert.equal(reply.choices[0]!.message.content, asSystem.choices[0]!.message.content);
  const auth = { authorization: `Bearer ${API_KEY}` };
  const tok = await postJson(`${server.url}/tokenize`, { messages: asDeveloper }, auth);
  assert.equal(tok.status, 200);
  assert.equal(tok.json.count, asSystem.usage!.prompt_tokens);
});

test("chat: text content parts are joined by newlines (as vLLM), the same in /tokenize", async () => {
  const parts = [
    {
      role: "user" as const,
      content: [
        { type: "text" as const, text: "Tell me a fortune." },
        { type: "text" as const, text: "Make it short." },
      ],
    },
  ];
  const asParts = await client.chat.completions.create({
    model: MODEL_NAME,
    messages: parts,
    max_tokens: 1,
    temperature: 0,
  });
  const want = llm.chatFormatter!.apply([
    { role: "user", content: "Tell me a fortune.\nMake it short." },
  ]).tokenIds;
  assert.equal(asParts.usage!.prompt_tokens, want.length);
  const auth = { authorization: `Bearer ${API_KEY}` };
  const tok = await postJson(`${server.url}/tokenize`, { messages: parts }, auth);
  assert.deepEqual(tok.json.tokens, want);
});

test("tokenize / detokenize / generate (vLLM routes)", async () => {
  const auth = { authorization: `Bearer ${API_KEY}` };
  const tok = await postJson(`${server.url}/tokenize`, { prompt: "Hello world" }, auth);
  assert.equal(tok.status, 200);
  assert.deepEqual(tok.json.tokens, llm.tokenizer.encode("Hello world"));
  assert.equal(tok.json.count, tok.json.tokens.length);
  const chatTok = await postJson(`${server.url}/tokenize`, { messages }, auth);
  assert.deepEqual(chatTok.json.tokens, llm.chatFormatter!.apply(messages).tokenIds);
  const detok = await postJson(`${server.url}/detokenize`, { tokens: tok.json.tokens.slice(1) }, auth);
  assert.equal(detok.json.prompt, "Hello world");
  const unauth = await postJson(`${server.url}/tokenize`, { prompt: "x" });
  assert.equal(unauth.status, 401);

  // The seed model card's curl example sends `-d` (form encoding): refused, so a web page cannot drive
  // /generate with a "simple" request that skips the CORS preflight. With a JSON content type it runs.
  const form = await fetch(`${server.url}/generate`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...auth },
    body: JSON.stringify({ prompt: "Fortune favours", n: 2, temperature: 0, max_tokens: 5 }),
  });
  assert.equal(form.status, 415);
  assert.equal(((await form.json()) as { error: { param: string } }).error.param, "content-type");
  const res = await fetch(`${server.url}/generate`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ prompt: "Fortune favours", n: 2, temperature: 0, max_tokens: 5 }),
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { text: string[] };
  assert.equal(body.text.length, 2);
  assert.ok(body.text[0]!.startsWith("Fortune favours") && body.text[0]!.length > "Fortune favours".length);
  assert.equal(body.text[0], body.text[1]);

  const streamed = await fetch(`${server.url}/generate`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ prompt: "Fortune favours", temperature: 0, max_tokens: 5, stream: true }),
  });
  const parts = (await streamed.text()).split("\0").filter((part) => part.length > 0);
  assert.ok(parts.length >= 2, "one JSON object per step");
  assert.deepEqual(JSON.parse(parts.at(-1)!).text, [body.text[0]], "the last object holds the whole text");
});

test("CORS: a loopback origin's preflight is answered without a key; responses and streams carry the origin", async () => {
  const origin = "http://localhost:5173";
  const preflight = await fetch(`${server.url}/v1/chat/completions`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), origin);
  assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/);
  const list = await fetch(`${server.url}/v1/models`, {
    headers: { origin, authorization: `Bearer ${API_KEY}` },
  });
  assert.equal(list.headers.get("access-control-allow-origin"), origin);
  const stream = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { origin, authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ prompt: "Fortune", max_tokens: 2, stream: true }),
  });
  assert.equal(stream.headers.get("access-control-allow-origin"), origin);
  assert.equal((await readSse(stream)).at(-1), "[DONE]");
  // Closed by default: a page on another site gets no CORS headers, so the browser keeps the answer from it.
  const foreign = await fetch(`${server.url}/v1/chat/completions`, {
    method: "OPTIONS",
    headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
  });
  assert.equal(foreign.headers.get("access-control-allow-origin"), null);
});
