/**
 * Issue 17: every request field is honoured or refused by name. The demo model behind a real server, driven by
 * the official openai client and raw HTTP: prompt_logprobs, continue_final_message, add_generation_prompt, chat
 * echo, completions echo with max_tokens 0, truncate_prompt_tokens, return_token_ids, return_token_strs,
 * tools: [], /generate's refusals, the vLLM metrics set, and POST /v1/responses (create and stream).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
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

let llm: LLM;
let server: TestServer;
let client: OpenAI;
const user = [{ role: "user", content: "Tell me a fortune." }];

before(async () => {
  llm = await loadTestModel();
  server = await startTestServer(llm);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
});
after(async () => {
  await server.close();
  await llm.dispose();
});

const chat = (body: Record<string, unknown>) =>
  postJson(`${server.url}/v1/chat/completions`, {
    model: MODEL_NAME,
    messages: user,
    max_tokens: 4,
    temperature: 0,
    ...body,
  });
const complete = (body: Record<string, unknown>) =>
  postJson(`${server.url}/v1/completions`, {
    model: MODEL_NAME,
    prompt: "Once upon a time",
    temperature: 0,
    ...body,
  });

function assertRefused(res: { status: number; json: { error: { param: string | null } } }, param: string) {
  assert.equal(res.status, 400, JSON.stringify(res.json));
  assert.equal(res.json.error.param, param);
}

describe("prompt_logprobs", () => {
  test("chat: one entry per prompt token, the first null, each the prompt token's logprob", async () => {
    const tok = await postJson(`${server.url}/tokenize`, { messages: user });
    const res = await chat({ prompt_logprobs: 0 });
    assert.equal(res.status, 200);
    const entries = res.json.prompt_logprobs;
    assert.equal(entries.length, tok.json.count);
    assert.equal(entries[0], null);
    for (let i = 1; i < entries.length; i++) {
      const entry = entries[i][String(tok.json.tokens[i])];
      assert.ok(entry.logprob <= 0 && Number.isFinite(entry.logprob), JSON.stringify(entries[i]));
      assert.equal(typeof entry.decoded_token, "string");
    }
  });
  test("completions: choices[i].prompt_logprobs", async () => {
    const res = await complete({ prompt_logprobs: 0, max_tokens: 2 });
    assert.equal(res.status, 200);
    assert.equal(res.json.choices[0].prompt_logprobs[0], null);
    assert.ok(res.json.choices[0].prompt_logprobs.length > 2);
  });
  test("prompt_logprobs N: each position's top N (ranks 1..N, the model's greedy next token first) and the prompt token's rank", async () => {
    const tok = await postJson(`${server.url}/tokenize`, { messages: user });
    const ids: number[] = tok.json.tokens;
    const own = (await chat({ prompt_logprobs: 0 })).json.prompt_logprobs;
    const res = await chat({ prompt_logprobs: 3 });
    assert.equal(res.status, 200);
    const entries = res.json.prompt_logprobs;
    assert.equal(entries.length, ids.length);
    assert.equal(entries[0], null);
    for (let i = 1; i < ids.length; i++) {
      const entry = entries[i];
      const prompt = entry[String(ids[i])];
      // The prompt token: the same logprob as with prompt_logprobs 0, and a rank of its own.
      assert.ok(Math.abs(prompt.logprob - own[i][String(ids[i])].logprob) < 1e-5);
      assert.ok(Number.isInteger(prompt.rank) && prompt.rank >= 1, JSON.stringify(entry));
      const alternatives = Object.entries(entry)
        .map(([id, lp]) => ({ id: Number(id), ...(lp as { logprob: number; rank: number }) }))
        .filter((alt) => alt.rank <= 3)
        .sort((a, b) => a.rank - b.rank);
      assert.deepEqual(
        alternatives.map((alt) => alt.rank),
        [1, 2, 3],
      );
      assert.equal(Object.keys(entry).length, prompt.rank <= 3 ? 3 : 4);
      for (let k = 1; k < 3; k++) assert.ok(alternatives[k - 1]!.logprob >= alternatives[k]!.logprob);
      assert.ok(alternatives[0]!.logprob >= prompt.logprob);
      // Rank 1 at position i is what the model predicts greedily after the first i tokens.
      if (i === 3 || i === ids.length - 1) {
        const [next] = await llm.generate(ids.slice(0, i), { temperature: 0, maxTokens: 1, logprobs: 3 });
        assert.equal(next!.tokenIds[0], alternatives[0]!.id);
        assert.ok(Math.abs(next!.logprobs![0]!.logprob - alternatives[0]!.logprob) < 1e-4);
      }
    }
  });
  test("completions: prompt_logprobs and echo's logprobs each get their own N", async () => {
    const res = await complete({ prompt_logprobs: 2, echo: true, logprobs: 1, max_tokens: 1 });
    assert.equal(res.status, 200);
    const choice = res.json.choices[0];
    const promptLength = choice.prompt_logprobs.length;
    for (const entry of choice.prompt_logprobs.slice(1)) {
      assert.ok(Object.keys(entry).length >= 2 && Object.keys(entry).length <= 3);
    }
    // echo: the prompt's top_logprobs hold the top 1 plus the prompt token when it is not the top one.
    const echoed = choice.logprobs.top_logprobs.slice(1, promptLength);
    for (const top of echoed) assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 2);
    assert.ok(echoed.some((top: object) => Object.keys(top).length === 2));
  });
  test("the library: generate's promptLogprobs N gives ranks and N alternatives", async () => {
    const [result] = await llm.generate("Once upon a time", {
      temperature: 0,
      maxTokens: 1,
      promptLogprobs: 2,
    });
    const entries = result!.promptLogprobs!;
    assert.equal(entries[0], null);
    for (const entry of entries.slice(1)) {
      assert.equal(entry!.top.length, 2);
      assert.ok(entry!.rank! >= 1);
      assert.ok(entry!.top[0]!.logprob >= entry!.top[1]!.logprob);
    }
  });
  test("refused with stream, above 20, and by a backend without prompt alternatives, naming the field", async () => {
    assertRefused(await chat({ prompt_logprobs: 0, stream: true }), "prompt_logprobs");
    assertRefused(await complete({ prompt_logprobs: 21 }), "prompt_logprobs");
    // An engine whose backend gives only each prompt token's own logprob (the CUDA backend today).
    const engine = llm.engine;
    const ownOnly = await startTestServer(llm, {
      engine: {
        maxModelLen: engine.maxModelLen,
        blockSize: engine.blockSize,
        eosTokenIds: engine.eosTokenIds,
        maxPromptLogprobs: 0,
        generate: (req) => engine.generate(req),
        abort: (id) => engine.abort(id),
        stats: () => engine.stats(),
        shutdown: async () => {},
      },
    });
    try {
      const url = `${ownOnly.url}/v1/completions`;
      const refused = await postJson(url, { prompt: "Once", prompt_logprobs: 1, max_tokens: 1 });
      assertRefused(refused, "prompt_logprobs");
      assert.match(refused.json.error.message, /at most 0/);
      assertRefused(
        await postJson(url, { prompt: "Once", echo: true, logprobs: 1, max_tokens: 1 }),
        "logprobs",
      );
      const own = await postJson(url, { prompt: "Once upon", prompt_logprobs: 0, max_tokens: 1 });
      assert.equal(own.status, 200);
    } finally {
      await ownOnly.close();
    }
  });
});

describe("chat prompt flags", () => {
  test("add_generation_prompt false leaves the assistant opener out", async () => {
    const withPrompt = await postJson(`${server.url}/tokenize`, { messages: user });
    const without = await postJson(`${server.url}/tokenize`, {
      messages: user,
      add_generation_prompt: false,
    });
    const text = (ids: number[]) => llm.tokenizer.decode(ids);
    assert.ok(text(withPrompt.json.tokens).endsWith("Assistant:"));
    assert.ok(!text(without.json.tokens).endsWith("Assistant:"));
    assert.ok(without.json.count < withPrompt.json.count);
  });
  test("continue_final_message: the last assistant message stays open (no <|end_of_turn|> after it)", async () => {
    const messages = [...user, { role: "assistant", content: "Your fortune is" }];
    const tok = await postJson(`${server.url}/tokenize`, { messages, continue_final_message: true });
    assert.equal(tok.status, 200);
    const text = llm.tokenizer.decode(tok.json.tokens);
    assert.ok(text.endsWith("Assistant: Your fortune is"), text);
    const closed = await postJson(`${server.url}/tokenize`, { messages, add_generation_prompt: false });
    assert.ok(
      llm.tokenizer.decode(closed.json.tokens, { skipSpecialTokens: false }).endsWith("<|end_of_turn|>"),
    );
    // The model continues it: the reply is what the library gives for the same open prompt.
    const res = await chat({ messages, continue_final_message: true, add_generation_prompt: false });
    assert.equal(res.status, 200);
    const [direct] = await llm.generate(tok.json.tokens, { temperature: 0, maxTokens: 4 });
    assert.equal(res.json.choices[0].message.content, direct!.text);
  });
  test("both flags true is a 400", async () => {
    const messages = [...user, { role: "assistant", content: "Your fortune is" }];
    assertRefused(
      await chat({ messages, continue_final_message: true, add_generation_prompt: true }),
      "continue_final_message",
    );
  });
  test("chat echo puts the final assistant message before the reply", async () => {
    const messages = [...user, { role: "assistant", content: "Your fortune is" }];
    const plain = await chat({ messages, continue_final_message: true });
    const echoed = await chat({ messages, continue_final_message: true, echo: true });
    assert.equal(
      echoed.json.choices[0].message.content,
      `Your fortune is${plain.json.choices[0].message.content}`,
    );
    const streamed = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages,
        continue_final_message: true,
        echo: true,
        stream: true,
        max_tokens: 4,
        temperature: 0,
      }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: SSE chunks
    const chunks = (await readSse(streamed)).filter((c) => c !== "[DONE]") as any[];
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    assert.equal(text, echoed.json.choices[0].message.content);
  });
  test("known OpenAI / vLLM fields this server does not implement are refused by name, defaults accepted", async () => {
    assertRefused(await chat({ chat_template_kwargs: { enable_thinking: true } }), "chat_template_kwargs");
    assertRefused(await chat({ store: true }), "store");
    assertRefused(await chat({ priority: 5 }), "priority");
    assertRefused(await complete({ max_tokens: 1, prompt_embeds: "AAAA" }), "prompt_embeds");
    assert.equal((await chat({ store: false, priority: 0, modalities: ["text"] })).status, 200);
  });
  test("a message's name is refused by name (the chat format has no place for it)", async () => {
    assertRefused(
      await chat({ messages: [{ role: "user", content: "Hi", name: "ann" }] }),
      "messages[0].name",
    );
  });
  test("tools: [] is a 400 naming tools", async () => {
    assertRefused(await chat({ tools: [] }), "tools");
  });
});

describe("completions echo, truncation, token ids", () => {
  test("echo with max_tokens 0 scores the prompt: the prompt text, its logprobs, no completion tokens", async () => {
    const res = await complete({ echo: true, max_tokens: 0, logprobs: 0 });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const choice = res.json.choices[0];
    assert.equal(choice.text, "Once upon a time");
    assert.equal(res.json.usage.completion_tokens, 0);
    assert.equal(choice.logprobs.tokens.length, res.json.usage.prompt_tokens);
    assert.equal(choice.logprobs.token_logprobs[0], null);
    assert.ok(choice.logprobs.token_logprobs[1] < 0);
    assertRefused(await complete({ max_tokens: 0 }), "max_tokens");
  });
  test("truncate_prompt_tokens keeps the last N prompt tokens", async () => {
    const full = await complete({ max_tokens: 1, return_token_ids: true });
    const cut = await complete({
      max_tokens: 1,
      truncate_prompt_tokens: 3,
      return_token_ids: true,
      echo: true,
    });
    assert.equal(cut.status, 200, JSON.stringify(cut.json));
    assert.equal(cut.json.usage.prompt_tokens, 3);
    assert.deepEqual(cut.json.choices[0].prompt_token_ids, full.json.choices[0].prompt_token_ids.slice(-3));
    const chatCut = await chat({ truncate_prompt_tokens: 5 });
    assert.equal(chatCut.json.usage.prompt_tokens, 5);
    assertRefused(await complete({ truncate_prompt_tokens: 0 }), "truncate_prompt_tokens");
  });
  test("return_token_ids: prompt_token_ids and token_ids, which decode to the text", async () => {
    const res = await complete({ max_tokens: 4, return_token_ids: true });
    const choice = res.json.choices[0];
    assert.equal(choice.prompt_token_ids.length, res.json.usage.prompt_tokens);
    assert.equal(choice.token_ids.length, res.json.usage.completion_tokens);
    assert.equal(llm.tokenizer.decode(choice.token_ids), choice.text);
    const c = await chat({ return_token_ids: true });
    assert.equal(c.json.prompt_token_ids.length, c.json.usage.prompt_tokens);
    const both = llm.tokenizer.decode([...c.json.prompt_token_ids, ...c.json.choices[0].token_ids]);
    assert.ok(both.endsWith(c.json.choices[0].message.content), both);
  });
  test("/tokenize return_token_strs gives the vocabulary pieces", async () => {
    const res = await postJson(`${server.url}/tokenize`, { prompt: "Hello world", return_token_strs: true });
    assert.equal(res.json.token_strs.length, res.json.count);
    assert.deepEqual(
      res.json.token_strs,
      res.json.tokens.map((id: number) => llm.tokenizer.idToToken(id)),
    );
    const plain = await postJson(`${server.url}/tokenize`, { prompt: "Hello world" });
    assert.equal(plain.json.token_strs, undefined);
  });
  test("/detokenize and /generate: model checked; logprobs and stream_options refused by name", async () => {
    const res = await postJson(`${server.url}/detokenize`, { tokens: [1, 15043], model: "other" });
    assert.equal(res.status, 404);
    assertRefused(await postJson(`${server.url}/generate`, { prompt: "Hi", logprobs: 1 }), "logprobs");
    assertRefused(
      await postJson(`${server.url}/generate`, { prompt: "Hi", stream_options: { include_usage: true } }),
      "stream_options",
    );
    const streamed = await fetch(`${server.url}/generate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Hi", stream: true, max_tokens: 3, temperature: 0 }),
    });
    const parts = (await streamed.text()).split("\0").filter((p) => p !== "");
    const last = JSON.parse(parts.at(-1)!);
    const whole = await postJson(`${server.url}/generate`, { prompt: "Hi", max_tokens: 3, temperature: 0 });
    assert.deepEqual(last, whole.json);
  });
});

describe("metrics", () => {
  test("vLLM v1's names, with the model_name and engine labels and vLLM's buckets", async () => {
    await chat({});
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of [
      "vllm:request_prompt_tokens_bucket",
      "vllm:request_generation_tokens_bucket",
      "vllm:request_queue_time_seconds_bucket",
      "vllm:request_prefill_time_seconds_bucket",
      "vllm:request_decode_time_seconds_bucket",
      "vllm:request_inference_time_seconds_bucket",
      "vllm:request_params_n_bucket",
      "vllm:request_params_max_tokens_bucket",
      "vllm:request_max_num_generation_tokens_bucket",
      "vllm:iteration_tokens_total_bucket",
      "vllm:inter_token_latency_seconds_bucket",
      "vllm:time_per_output_token_seconds_bucket",
      "vllm:time_to_first_token_seconds_bucket",
      "vllm:e2e_request_latency_seconds_bucket",
      "vllm:num_preemptions_total",
      "vllm:prefix_cache_queries_total",
      "vllm:prefix_cache_hits_total",
      "vllm:prompt_tokens_total",
      "vllm:generation_tokens_total",
      "vllm:request_success_total",
      "vllm:cache_config_info",
      "vllm:num_requests_running",
      "vllm:num_requests_waiting",
      "vllm:kv_cache_usage_perc",
      "vllm:gpu_cache_usage_perc",
    ]) {
      assert.match(text, new RegExp(`^${name}\\{`, "m"), name);
    }
    assert.match(text, /^vllm:request_params_n_bucket\{le="20",model_name="tiny-chat",engine="0"\} \d+/m);
    assert.match(
      text,
      /^vllm:e2e_request_latency_seconds_bucket\{le="7680",model_name="tiny-chat",engine="0"\}/m,
    );
    assert.match(text, /^vllm:cache_config_info\{block_size="16",.*engine="0"\} 1$/m);
    const iterations = /^vllm:iteration_tokens_total_count\{[^}]*\} (\d+)/m.exec(text);
    assert.ok(Number(iterations?.[1]) > 0);
    const queries = /^vllm:prefix_cache_queries_total\{[^}]*\} (\d+)/m.exec(text);
    assert.ok(Number(queries?.[1]) > 0);
  });
  test("every series vLLM's Grafana dashboard queries is served, with the labels it selects and groups by", async () => {
    // The metrics and labels of vLLM's examples/online_serving/prometheus_grafana/grafana.json: every panel
    // selects {model_name="$model_name"} (the variable comes from label_values(model_name)); the finish-reason
    // panel sums by finished_reason; the latency panels take _bucket by le, _sum and _count.
    await chat({});
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const histograms = [
      "vllm:e2e_request_latency_seconds",
      "vllm:time_per_output_token_seconds",
      "vllm:time_to_first_token_seconds",
      "vllm:request_prompt_tokens",
      "vllm:request_generation_tokens",
      "vllm:request_queue_time_seconds",
      "vllm:request_prefill_time_seconds",
      "vllm:request_decode_time_seconds",
      "vllm:request_max_num_generation_tokens",
    ];
    const series = [
      ...histograms.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
      "vllm:prompt_tokens_total",
      "vllm:generation_tokens_total",
      "vllm:num_requests_running",
      "vllm:num_requests_swapped",
      "vllm:num_requests_waiting",
      "vllm:gpu_cache_usage_perc",
      "vllm:cpu_cache_usage_perc",
      "vllm:request_success_total",
    ];
    for (const name of series) {
      const line = new RegExp(`^${name}\\{[^}]*model_name="${MODEL_NAME}"[^}]*\\} [0-9.e+-]+$`, "m");
      assert.match(text, line, name);
    }
    for (const h of histograms) assert.match(text, new RegExp(`^${h}_bucket\\{le="\\+Inf",`, "m"), h);
    for (const reason of ["stop", "length", "abort"]) {
      assert.match(
        text,
        new RegExp(`^vllm:request_success_total\\{[^}]*finished_reason="${reason}"`, "m"),
        reason,
      );
    }
  });
  test("time to first token counts from the HTTP request's arrival, not the engine's start", async () => {
    const ttftSum = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/^vllm:time_to_first_token_seconds_sum\{[^}]*\} ([\d.e-]+)/m.exec(text)?.[1] ?? 0);
    };
    const before = await ttftSum();
    // The body arrives 300 ms after the headers: that wait is part of the time to first token.
    const { request } = await import("node:http");
    const url = new URL(`${server.url}/v1/completions`);
    await new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers: { "content-type": "application/json" },
        },
        (res) => {
          res.resume();
          res.on("end", resolve);
        },
      );
      req.on("error", reject);
      req.flushHeaders();
      setTimeout(() => req.end(JSON.stringify({ prompt: "Hi", max_tokens: 1 })), 300);
    });
    assert.ok((await ttftSum()) - before >= 0.29, "TTFT includes the wait for the body");
  });
});

describe("POST /v1/responses", () => {
  test("client.responses.create: output_text, usage, instructions, max_output_tokens", async () => {
    const response = await client.responses.create({
      model: MODEL_NAME,
      input: "Tell me a fortune.",
      instructions: "You are OpenOrcaChat.",
      max_output_tokens: 5,
      temperature: 0,
    });
    assert.equal(response.object, "response");
    assert.equal(response.status, "incomplete");
    assert.equal(response.incomplete_details?.reason, "max_output_tokens");
    assert.equal(response.usage?.output_tokens, 5);
    const expected = await chat({
      messages: [{ role: "system", content: "You are OpenOrcaChat." }, ...user],
      max_tokens: 5,
    });
    assert.equal(response.output_text, expected.json.choices[0].message.content);
    assert.equal(response.usage?.input_tokens, expected.json.usage.prompt_tokens);
  });
  test("client.responses.stream: the typed events, and the final response", async () => {
    const stream = client.responses.stream({
      model: MODEL_NAME,
      input: [{ role: "user", content: "Tell me a fortune." }],
      max_output_tokens: 4,
      temperature: 0,
    });
    const types: string[] = [];
    let deltas = "";
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") deltas += event.delta;
    }
    const final = await stream.finalResponse();
    assert.equal(types[0], "response.created");
    assert.ok(types.includes("response.output_text.delta"));
    assert.ok(types.includes("response.output_text.done"));
    assert.equal(types.at(-1), "response.incomplete");
    assert.equal(final.output_text, deltas);
    const whole = await client.responses.create({
      model: MODEL_NAME,
      input: "Tell me a fortune.",
      max_output_tokens: 4,
      temperature: 0,
    });
    assert.equal(whole.output_text, deltas);
  });
  test("store: false accepted; previous_response_id, store: true and tools refused by name", async () => {
    const ok = await postJson(`${server.url}/v1/responses`, {
      input: "Hi",
      max_output_tokens: 1,
      store: false,
    });
    assert.equal(ok.status, 200);
    const url = `${server.url}/v1/responses`;
    assertRefused(
      await postJson(url, { input: "Hi", previous_response_id: "resp_1" }),
      "previous_response_id",
    );
    assertRefused(await postJson(url, { input: "Hi", store: true }), "store");
    assertRefused(await postJson(url, { input: "Hi", tools: [{ type: "web_search" }] }), "tools");
    assertRefused(await postJson(url, { input: "Hi", max_output_tokens: 0 }), "max_output_tokens");
  });
  test("text.format json_schema constrains the output; metadata and user come back", async () => {
    const response = await client.responses.create({
      model: MODEL_NAME,
      input: "Yes or no?",
      max_output_tokens: 8,
      text: {
        format: {
          type: "json_schema",
          name: "answer",
          schema: { type: "string", enum: ["yes", "no"] },
          strict: true,
        },
      },
      metadata: { ticket: "42" },
      user: "tester",
    });
    assert.ok(["yes", "no"].includes(JSON.parse(response.output_text)), response.output_text);
    assert.deepEqual(response.metadata, { ticket: "42" });
    assert.equal(response.user, "tester");
  });
  test("temperature and top_p are the sampling's (a tiny top_p at temperature 1 is greedy)", async () => {
    const a = await postJson(`${server.url}/v1/responses`, {
      input: "Hi",
      max_output_tokens: 6,
      temperature: 0,
    });
    const b = await chat({ messages: [{ role: "user", content: "Hi" }], max_tokens: 6, temperature: 0 });
    assert.equal(a.json.output[0].content[0].text, b.json.choices[0].message.content);
    const nucleus = await postJson(`${server.url}/v1/responses`, {
      input: "Hi",
      max_output_tokens: 6,
      temperature: 1,
      top_p: 1e-6,
    });
    assert.equal(nucleus.json.output[0].content[0].text, b.json.choices[0].message.content);
    assertRefused(await postJson(`${server.url}/v1/responses`, { input: "Hi", top_p: 0 }), "top_p");
  });
});

describe("sampling fields over HTTP: each matches the library's camelCase parameter and changes the output", () => {
  const base = { max_tokens: 12, temperature: 1, seed: 7 };
  // biome-ignore lint/suspicious/noExplicitAny: request bodies of the table
  const run = async (extra: Record<string, any>) => {
    const res = await complete({ ...base, return_token_ids: true, ...extra });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return res.json.choices[0];
  };
  const library = async (promptIds: number[], params: Record<string, unknown>) =>
    (await llm.generate(promptIds, { maxTokens: 12, temperature: 1, seed: 7, ...params }))[0]!;

  test("top_k, top_p, min_p, repetition/presence/frequency penalties, logit_bias, seed", async () => {
    const baseline = await run({});
    const ids: number[] = baseline.prompt_token_ids;
    const cases: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ top_k: 1 }, { topK: 1 }],
      [{ top_p: 0.05 }, { topP: 0.05 }],
      [{ min_p: 0.6 }, { minP: 0.6 }],
      [{ repetition_penalty: 3 }, { repetitionPenalty: 3 }],
      [{ presence_penalty: 2 }, { presencePenalty: 2 }],
      [{ frequency_penalty: 2 }, { frequencyPenalty: 2 }],
      [{ logit_bias: { [baseline.token_ids[0]]: -100 } }, { logitBias: { [baseline.token_ids[0]]: -100 } }],
      [{ seed: 8 }, { seed: 8 }],
    ];
    for (const [wire, camel] of cases) {
      const got = await run(wire);
      const want = await library(ids, camel);
      assert.deepEqual(got.token_ids, want.tokenIds, JSON.stringify(wire));
      assert.notDeepEqual(got.token_ids, baseline.token_ids, `${JSON.stringify(wire)} changed nothing`);
    }
    assert.deepEqual((await run({})).token_ids, baseline.token_ids, "the same seed gives the same tokens");
  });

  test("stop, stop_token_ids, include_stop_str_in_output, skip_special_tokens, ignore_eos, n, max_completion_tokens", async () => {
    const greedy = await run({ temperature: 0 });
    const third = greedy.token_ids[2];
    const byId = await run({ temperature: 0, stop_token_ids: [third] });
    assert.equal(byId.finish_reason, "stop");
    assert.equal(byId.stop_reason, third);
    assert.deepEqual(byId.token_ids, greedy.token_ids.slice(0, 3));
    const word = greedy.text.trim().split(/\s+/)[1];
    const byStr = await run({ temperature: 0, stop: [word] });
    assert.equal(byStr.stop_reason, word);
    assert.ok(!byStr.text.includes(word));
    const kept = await run({ temperature: 0, stop: [word], include_stop_str_in_output: true });
    assert.ok(kept.text.endsWith(word), kept.text);
    // Force </s> with ignore_eos: it is generated without ending the request, and shown only when asked.
    const eos = llm.tokenizer.eosTokenId ?? 2;
    const forced = { temperature: 0, ignore_eos: true, logit_bias: { [eos]: 100 }, max_tokens: 3 };
    const hidden = await run(forced);
    assert.equal(hidden.finish_reason, "length");
    assert.deepEqual(hidden.token_ids, [eos, eos, eos]);
    const shown = await run({ ...forced, skip_special_tokens: false });
    assert.ok(shown.text.includes(llm.tokenizer.idToToken(eos)!), shown.text);
    assert.ok(!hidden.text.includes(llm.tokenizer.idToToken(eos)!));
    // min_tokens holds the (forced) end of sequence back until that many tokens are out.
    const early = await run({ temperature: 0, logit_bias: { [eos]: 100 }, max_tokens: 8 });
    const held = await run({ temperature: 0, logit_bias: { [eos]: 100 }, max_tokens: 8, min_tokens: 4 });
    assert.equal(early.token_ids.length, 1);
    assert.ok(held.token_ids.length >= 4, JSON.stringify(held));
    const several = await complete({ ...base, n: 3 });
    assert.equal(several.json.choices.length, 3);
    assert.equal(new Set(several.json.choices.map((c: { text: string }) => c.text)).size > 1, true);
    const capped = await chat({ max_tokens: undefined, max_completion_tokens: 3, ignore_eos: true });
    assert.equal(capped.json.usage.completion_tokens, 3);
  });

  test("best_of other than n, and suffix, are refused by name; add_special_tokens false drops BOS", async () => {
    assertRefused(await complete({ best_of: 2 }), "best_of");
    assertRefused(await complete({ suffix: "The end." }), "suffix");
    assert.equal((await complete({ best_of: 1, max_tokens: 1 })).status, 200);
    const withBos = await postJson(`${server.url}/tokenize`, { prompt: "Hello" });
    const without = await postJson(`${server.url}/tokenize`, { prompt: "Hello", add_special_tokens: false });
    assert.deepEqual(without.json.tokens, withBos.json.tokens.slice(1));
  });
});
