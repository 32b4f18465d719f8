/**
 * Issue 17's acceptance audit: every field of every request schema (chat, completions, /generate, /tokenize,
 * /detokenize, /v1/responses) is honoured or refused with a 400 naming it. docs/api-fields.md lists them by
 * route; this suite holds the list to the schemas (no field missing, every cited test exists), sends every
 * refused field to see its 400, and shows the effect of the fields no other suite covers.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import type { TSchema } from "@sinclair/typebox";
import pino from "pino";
import type { LLM } from "../src/llm.js";
import { UNSUPPORTED_FIELDS } from "../src/server/request-params.js";
import { ResponsesBody } from "../src/server/routes/responses.js";
import {
  ChatCompletionBody,
  CompletionBody,
  DetokenizeBody,
  GenerateBody,
  TokenizeChatBody,
  TokenizePromptBody,
} from "../src/server/schemas.js";
import {
  loadTestModel,
  MODEL_NAME,
  postJson,
  readSse,
  repoRoot,
  startTestServer,
  type TestServer,
} from "./server-harness.js";

let llm: LLM;
let server: TestServer;
/** The JSON log lines of the server (one per request). */
const logLines: Record<string, unknown>[] = [];

before(async () => {
  llm = await loadTestModel();
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line.trim() !== "") logLines.push(JSON.parse(line));
      done();
    },
  });
  server = await startTestServer(llm, { logger: pino({ level: "info" }, sink) });
});
after(async () => {
  await server.close();
  await llm.dispose();
});

const user = [{ role: "user" as const, content: "Tell me a fortune." }];
const post = (path: string, body: unknown) => postJson(`${server.url}${path}`, body);

/** The routes of the audit: the doc's heading, the body schema, and a small valid body. */
const ROUTES: Record<
  string,
  { heading: string; path: string; schema: TSchema; base: Record<string, unknown> }
> = {
  chat: {
    heading: "POST /v1/chat/completions",
    path: "/v1/chat/completions",
    schema: ChatCompletionBody,
    base: { messages: [{ role: "user", content: "Hi" }], max_tokens: 1 },
  },
  completions: {
    heading: "POST /v1/completions",
    path: "/v1/completions",
    schema: CompletionBody,
    base: { prompt: "Hi", max_tokens: 1 },
  },
  generate: {
    heading: "POST /generate",
    path: "/generate",
    schema: GenerateBody,
    base: { prompt: "Hi", max_tokens: 1 },
  },
  tokenizePrompt: {
    heading: "POST /tokenize (prompt form)",
    path: "/tokenize",
    schema: TokenizePromptBody,
    base: { prompt: "Hi" },
  },
  tokenizeChat: {
    heading: "POST /tokenize (messages form)",
    path: "/tokenize",
    schema: TokenizeChatBody,
    base: { messages: [{ role: "user", content: "Hi" }] },
  },
  detokenize: {
    heading: "POST /detokenize",
    path: "/detokenize",
    schema: DetokenizeBody,
    base: { tokens: [1, 15043] },
  },
  responses: {
    heading: "POST /v1/responses",
    path: "/v1/responses",
    schema: ResponsesBody,
    base: { input: "Hi", max_output_tokens: 1 },
  },
};

/** Every field path of a TypeBox body schema: `a`, `a.b`, `a[].b` (through unions, optionals and arrays). */
function fieldPaths(schema: TSchema, prefix = "", out: string[] = []): string[] {
  const s = schema as {
    anyOf?: TSchema[];
    type?: string;
    items?: TSchema;
    properties?: Record<string, TSchema>;
  };
  if (s.anyOf) for (const option of s.anyOf) fieldPaths(option, prefix, out);
  else if (s.type === "array" && s.items) fieldPaths(s.items, `${prefix}[]`, out);
  else if (s.type === "object" && s.properties) {
    for (const [name, sub] of Object.entries(s.properties)) {
      const path = prefix === "" ? name : `${prefix}.${name}`;
      if (!out.includes(path)) out.push(path);
      fieldPaths(sub, path, out);
    }
  }
  return out;
}

interface DocRow {
  fields: string[];
  status: "honoured" | "refused" | "accepted";
  evidence: string;
}

/** docs/api-fields.md's rows, by route heading. */
function readDoc(): Map<string, DocRow[]> {
  const sections = new Map<string, DocRow[]>();
  let rows: DocRow[] | null = null;
  for (const line of readFileSync(`${repoRoot}docs/api-fields.md`, "utf8").split("\n")) {
    const heading = /^## (.+)$/.exec(line);
    if (heading) {
      rows = [];
      sections.set(heading[1]!.trim(), rows);
      continue;
    }
    const row = /^\| (.+?) \| (honoured|refused|accepted) \| (.+) \|$/.exec(line);
    if (row && rows) {
      const fields = [...row[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      rows.push({ fields, status: row[2] as DocRow["status"], evidence: row[3]! });
    }
  }
  return sections;
}

/** `suite.test.ts › "name"` (or `› 'name'` for a name with double quotes) citations of an evidence cell. */
function citations(evidence: string): { file: string; name: string }[] {
  return [...evidence.matchAll(/([\w-]+\.test\.ts) › (?:"([^"]+)"|'([^']+)')/g)].map((m) => ({
    file: m[1]!,
    name: (m[2] ?? m[3])!,
  }));
}

describe("docs/api-fields.md against the schemas", () => {
  const doc = readDoc();

  test("every field of every request schema has a row: honoured with a test that exists, or refused with a value", () => {
    for (const route of Object.values(ROUTES)) {
      const rows = doc.get(route.heading);
      assert.ok(rows, `docs/api-fields.md has no section "## ${route.heading}"`);
      const listed = new Set(rows.flatMap((r) => r.fields));
      // A field under one that is refused as a whole (stream_options on /generate) is refused with it.
      const refusedWhole = new Set(rows.filter((r) => r.status === "refused").flatMap((r) => r.fields));
      const ancestors = (path: string) =>
        [...path.matchAll(/\.|\[\]/g)].map((m) => path.slice(0, m.index)).filter((p) => p !== "");
      const missing = fieldPaths(route.schema).filter(
        (path) => !listed.has(path) && !ancestors(path).some((a) => refusedWhole.has(a)),
      );
      assert.deepEqual(missing, [], `${route.heading}: fields without a row`);
      for (const row of rows) {
        if (row.status === "honoured") {
          const cited = citations(row.evidence);
          assert.ok(cited.length > 0, `${route.heading} ${row.fields}: an honoured row cites no test`);
          for (const { file, name } of cited) {
            const path = existsSync(`${repoRoot}test/${file}`) ? `${repoRoot}test/${file}` : null;
            assert.ok(path, `${route.heading} ${row.fields}: no test/${file}`);
            const source = readFileSync(path, "utf8").replaceAll(/\s*\n\s*/g, " ");
            assert.ok(
              source.includes(`"${name}"`) || source.includes(`'${name}'`) || source.includes(`\`${name}\``),
              `${route.heading} ${row.fields}: test/${file} has no test "${name}"`,
            );
          }
        }
        if (row.status === "refused") {
          assert.equal(row.fields.length, 1, `${route.heading}: one field per refused row (${row.fields})`);
          assert.match(
            row.evidence,
            /^`[^`]+`/,
            `${route.heading} ${row.fields}: a refused row starts with its value`,
          );
        }
      }
    }
  });

  test("the only fields accepted without an effect are the two format descriptions (vLLM ignores them too)", () => {
    const accepted = [...doc.entries()].flatMap(([heading, rows]) =>
      rows.filter((r) => r.status === "accepted").flatMap((r) => r.fields.map((f) => `${heading}: ${f}`)),
    );
    assert.deepEqual(accepted.sort(), [
      "POST /generate: response_format.json_schema.description",
      "POST /v1/chat/completions: response_format.json_schema.description",
      "POST /v1/completions: response_format.json_schema.description",
      "POST /v1/responses: text.format.description",
    ]);
  });

  test("the known OpenAI / vLLM fields this server does not implement are refused rows of chat, completions and responses", () => {
    for (const key of ["chat", "completions", "responses"]) {
      const rows = doc.get(ROUTES[key]!.heading)!;
      const refused = new Set(rows.filter((r) => r.status === "refused").flatMap((r) => r.fields));
      const honoured = new Set(rows.filter((r) => r.status !== "refused").flatMap((r) => r.fields));
      const absent = UNSUPPORTED_FIELDS.filter((f) => !refused.has(f) && !honoured.has(f));
      assert.deepEqual(absent, [], `${ROUTES[key]!.heading}: not listed`);
    }
  });

  test("every field of OpenAI's and vLLM's request schemas is a field of ours or refused by name", () => {
    // OpenAI's API reference (chat, completions, responses) and vLLM's entrypoints/openai/protocol.py
    // (ChatCompletionRequest, CompletionRequest, ResponsesRequest): the top-level field names.
    const openAiChat =
      "messages model audio frequency_penalty function_call functions logit_bias logprobs max_completion_tokens max_tokens metadata modalities n parallel_tool_calls prediction presence_penalty prompt_cache_key reasoning_effort response_format safety_identifier seed service_tier stop store stream stream_options temperature tool_choice tools top_logprobs top_p user verbosity web_search_options";
    const vllmChat =
      "include_reasoning best_of use_beam_search top_k min_p repetition_penalty length_penalty stop_token_ids include_stop_str_in_output ignore_eos min_tokens skip_special_tokens spaces_between_special_tokens truncate_prompt_tokens prompt_logprobs allowed_token_ids bad_words echo add_generation_prompt continue_final_message add_special_tokens documents chat_template chat_template_kwargs mm_processor_kwargs guided_json guided_regex guided_choice guided_grammar structural_tag guided_decoding_backend guided_whitespace_pattern priority request_id logits_processors return_tokens_as_token_ids cache_salt kv_transfer_params vllm_xargs structured_outputs return_token_ids";
    const openAiCompletions =
      "model prompt best_of echo frequency_penalty logit_bias logprobs max_tokens n presence_penalty seed stop stream stream_options suffix temperature top_p user";
    const vllmCompletions =
      "prompt_embeds use_beam_search top_k min_p repetition_penalty length_penalty stop_token_ids include_stop_str_in_output ignore_eos min_tokens skip_special_tokens spaces_between_special_tokens truncate_prompt_tokens allowed_token_ids prompt_logprobs add_special_tokens response_format guided_json guided_regex guided_choice guided_grammar guided_decoding_backend guided_whitespace_pattern priority request_id logits_processors return_tokens_as_token_ids cache_salt kv_transfer_params vllm_xargs structured_outputs return_token_ids bad_words";
    const responses =
      "background conversation include input instructions max_output_tokens max_tool_calls metadata model parallel_tool_calls previous_response_id prompt prompt_cache_key reasoning safety_identifier service_tier store stream stream_options temperature text tool_choice tools top_logprobs top_p truncation user request_id mm_processor_kwargs priority cache_salt";
    // Checked by name in the Responses route itself (not schema fields).
    const responsesOwn = ["conversation", "prompt", "stream_options"];
    const check = (route: keyof typeof ROUTES, names: string, own: string[] = []) => {
      const known = new Set([
        ...Object.keys((ROUTES[route]!.schema as unknown as { properties: object }).properties),
        ...UNSUPPORTED_FIELDS,
        ...own,
      ]);
      assert.deepEqual(
        names.split(" ").filter((n) => !known.has(n)),
        [],
        `${ROUTES[route]!.heading}: neither a field nor refused`,
      );
    };
    check("chat", `${openAiChat} ${vllmChat}`);
    check("completions", `${openAiCompletions} ${vllmCompletions}`);
    check("responses", responses, responsesOwn);
  });

  test("every refused row is a 400 naming its field", async () => {
    let sent = 0;
    for (const route of Object.values(ROUTES)) {
      for (const row of doc.get(route.heading)!.filter((r) => r.status === "refused")) {
        const field = row.fields[0]!;
        const value = JSON.parse(/^`([^`]+)`/.exec(row.evidence)![1]!);
        // A nested field's row gives the body to merge (its param names the first element: `[]` -> `[0]`).
        const nested = /[.[]/.test(field);
        const body = nested ? { ...route.base, ...value } : { ...route.base, [field]: value };
        const res = await post(route.path, body);
        const param = field.replaceAll("[]", "[0]");
        assert.equal(res.status, 400, `${route.heading} ${field}: ${JSON.stringify(res.json)}`);
        assert.equal(res.json.error.param, param, `${route.heading} ${field}: ${res.json.error.message}`);
        sent++;
      }
    }
    assert.ok(sent > 100, `only ${sent} refused rows were read from the doc`);
  });
});

/** snake_case wire fields -> the library's camelCase parameters. */
const camel = (wire: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(wire).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), v]),
  );

describe("sampling fields on chat, completions and /generate", () => {
  const base = { max_tokens: 10, temperature: 1, seed: 7 };
  const eos = () => llm.tokenizer.eosTokenId ?? 2;
  /** Chat: the reply's token ids (return_token_ids) and the prompt's ids. */
  const chat = async (extra: Record<string, unknown>) => {
    const res = await post("/v1/chat/completions", {
      messages: user,
      ...base,
      return_token_ids: true,
      ...extra,
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const choice = res.json.choices[0];
    return {
      ids: choice.token_ids as number[],
      text: choice.message.content as string,
      prompt: res.json.prompt_token_ids as number[],
    };
  };
  const generate = async (extra: Record<string, unknown>) => {
    const res = await post("/generate", { prompt: "Once upon a time", ...base, ...extra });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return res.json.text[0] as string;
  };
  const complete = async (extra: Record<string, unknown>) => {
    const res = await post("/v1/completions", {
      prompt: "Once upon a time",
      ...base,
      return_token_ids: true,
      ...extra,
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return { ids: res.json.choices[0].token_ids as number[], text: res.json.choices[0].text as string };
  };
  const library = async (prompt: number[] | string, wire: Record<string, unknown>) =>
    (await llm.generate(prompt, camel({ ...base, ...wire })))[0]!;

  test("each field gives the library's output for its camelCase parameter, and changes the output", async () => {
    const greedy = await chat({ temperature: 0 });
    const baseline = await chat({});
    const word = greedy.text.trim().split(/\s+/)[1]!;
    const cases: Record<string, unknown>[] = [
      { temperature: 0 },
      { top_k: 1 },
      { top_p: 0.05 },
      { min_p: 0.6 },
      { repetition_penalty: 3 },
      { presence_penalty: 2 },
      { frequency_penalty: 2 },
      { logit_bias: { [baseline.ids[0]!]: -100 } },
      { seed: 8 },
      { max_tokens: 3 },
      { temperature: 0, stop: [word] },
      { temperature: 0, stop: [word], include_stop_str_in_output: true },
      { temperature: 0, stop_token_ids: [greedy.ids[2]] },
      { temperature: 0, ignore_eos: true, logit_bias: { [eos()]: 100 }, max_tokens: 3 },
      {
        temperature: 0,
        ignore_eos: true,
        logit_bias: { [eos()]: 100 },
        max_tokens: 3,
        skip_special_tokens: false,
      },
      { temperature: 0, logit_bias: { [eos()]: 100 }, min_tokens: 4 },
    ];
    const genBaseline = await generate({});
    const completeBaseline = await complete({});
    for (const wire of cases) {
      const got = await chat(wire);
      const want = await library(got.prompt, wire);
      assert.deepEqual(got.ids, want.tokenIds, `chat ${JSON.stringify(wire)}`);
      assert.equal(got.text, want.text, `chat ${JSON.stringify(wire)}`);
      const changedFrom = wire.temperature === 0 && Object.keys(wire).length > 1 ? greedy : baseline;
      assert.notEqual(got.text, changedFrom.text, `chat ${JSON.stringify(wire)} changed nothing`);
      const direct = await library("Once upon a time", wire);
      const completion = await complete(wire);
      assert.deepEqual(completion.ids, direct.tokenIds, `completions ${JSON.stringify(wire)}`);
      if (!("logit_bias" in wire))
        assert.notEqual(completion.text, completeBaseline.text, `completions ${JSON.stringify(wire)}`);
      const text = await generate(wire);
      assert.equal(text, `Once upon a time${direct.text}`, `/generate ${JSON.stringify(wire)}`);
      if (!("logit_bias" in wire))
        assert.notEqual(text, genBaseline, `/generate ${JSON.stringify(wire)} changed nothing`);
    }
  });
});

describe("fields no other suite shows", () => {
  test("user and safety_identifier go to the request's log line on every generating route", async () => {
    const bodies: [string, Record<string, unknown>][] = [
      ["/v1/chat/completions", { messages: user, max_tokens: 1 }],
      ["/v1/completions", { prompt: "Hi", max_tokens: 1 }],
      ["/generate", { prompt: "Hi", max_tokens: 1 }],
      ["/v1/responses", { input: "Hi", max_output_tokens: 1 }],
    ];
    for (const [path, body] of bodies) {
      const tag = `u-${path.replaceAll("/", "")}`;
      const res = await post(path, { ...body, user: tag, safety_identifier: `s-${tag}` });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      // The line is written once the response is over (a tick after it closes).
      let line: Record<string, unknown> | undefined;
      for (let i = 0; i < 50 && line === undefined; i++) {
        line = logLines.find((l) => l.user === tag);
        if (line === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(line, `${path}: no log line with user ${tag}`);
      assert.equal(line.safetyIdentifier, `s-${tag}`);
      assert.equal(line.url, path);
    }
  });

  test("request_id names the response (chatcmpl-, cmpl-, resp_); an invalid one is a 400", async () => {
    const chat = await post("/v1/chat/completions", { messages: user, max_tokens: 1, request_id: "trace-1" });
    assert.equal(chat.json.id, "chatcmpl-trace-1");
    const completion = await post("/v1/completions", { prompt: "Hi", max_tokens: 1, request_id: "trace-2" });
    assert.equal(completion.json.id, "cmpl-trace-2");
    const response = await post("/v1/responses", {
      input: "Hi",
      max_output_tokens: 1,
      request_id: "trace-3",
    });
    assert.equal(response.json.id, "resp_trace-3");
    const streamed = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: user, max_tokens: 2, stream: true, request_id: "trace-4" }),
    });
    const chunks = (await readSse(streamed)).filter((c) => c !== "[DONE]") as { id: string }[];
    assert.ok(chunks.every((c) => c.id === "chatcmpl-trace-4"));
    // The engine's requests are named after it: one id cannot run twice at once.
    const long = post("/v1/completions", {
      prompt: "Hi",
      max_tokens: 40,
      ignore_eos: true,
      request_id: "twice",
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await post("/v1/completions", { prompt: "Hi", max_tokens: 1, request_id: "twice" });
    assert.equal(again.status, 400, JSON.stringify(again.json));
    assert.equal(again.json.error.param, "request_id");
    assert.equal((await long).status, 200);
    const bad = await post("/v1/chat/completions", { messages: user, request_id: "has space" });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, "request_id");
  });

  test("add_special_tokens: completions false drops the BOS; chat and /tokenize's messages form true add one more", async () => {
    const bos = llm.tokenizer.bosTokenId!;
    const withBos = await post("/v1/completions", {
      prompt: "Hi there",
      max_tokens: 1,
      return_token_ids: true,
    });
    const without = await post("/v1/completions", {
      prompt: "Hi there",
      max_tokens: 1,
      return_token_ids: true,
      add_special_tokens: false,
    });
    assert.equal(withBos.json.choices[0].prompt_token_ids[0], bos);
    assert.deepEqual(
      without.json.choices[0].prompt_token_ids,
      withBos.json.choices[0].prompt_token_ids.slice(1),
    );
    const chatIds = async (extra: Record<string, unknown>) =>
      (
        await post("/v1/chat/completions", {
          messages: user,
          max_tokens: 1,
          return_token_ids: true,
          ...extra,
        })
      ).json.prompt_token_ids as number[];
    const plain = await chatIds({});
    assert.deepEqual(await chatIds({ add_special_tokens: false }), plain);
    assert.deepEqual(await chatIds({ add_special_tokens: true }), [bos, ...plain]);
    const tok = await post("/tokenize", { messages: user, add_special_tokens: true });
    assert.deepEqual(tok.json.tokens, [bos, ...plain]);
  });

  test("chat echo reports the prompt's logprobs as vLLM does (top_logprobs alternatives); top_logprobs 0 needs no logprobs", async () => {
    const messages = [...user, { role: "assistant", content: "Your fortune is" }];
    const body = {
      messages,
      continue_final_message: true,
      add_generation_prompt: false,
      echo: true,
      max_tokens: 2,
    };
    const plain = await post("/v1/chat/completions", { ...body, return_token_ids: true });
    assert.equal(plain.json.prompt_logprobs.length, plain.json.prompt_token_ids.length);
    assert.equal(plain.json.prompt_logprobs[0], null);
    assert.equal(Object.keys(plain.json.prompt_logprobs[1]).length, 1);
    const top = await post("/v1/chat/completions", { ...body, logprobs: true, top_logprobs: 2 });
    assert.ok(top.json.prompt_logprobs.slice(1).every((e: object) => Object.keys(e).length >= 2));
    const streamed = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...body, stream: true }),
    });
    assert.equal(streamed.status, 200);
    const noEcho = await post("/v1/chat/completions", { messages: user, max_tokens: 1, top_logprobs: 0 });
    assert.equal(noEcho.status, 200);
    assert.equal(noEcho.json.prompt_logprobs, undefined);
    assert.equal(noEcho.json.choices[0].logprobs, null);
  });

  test("best_of equal to n is accepted on chat and completions (n choices come back)", async () => {
    const chat = await post("/v1/chat/completions", { messages: user, max_tokens: 2, n: 2, best_of: 2 });
    assert.equal(chat.json.choices.length, 2);
    const completion = await post("/v1/completions", { prompt: "Hi", max_tokens: 2, n: 2, best_of: 2 });
    assert.equal(completion.json.choices.length, 2);
  });

  test("model: every route takes the served name and answers 404 naming model for another", async () => {
    for (const route of Object.values(ROUTES)) {
      const ok = await post(route.path, { ...route.base, model: MODEL_NAME });
      assert.equal(ok.status, 200, `${route.heading}: ${JSON.stringify(ok.json)}`);
      const other = await post(route.path, { ...route.base, model: "gpt-4" });
      assert.equal(other.status, 404, route.heading);
      assert.equal(other.json.error.param, "model");
    }
  });

  test('tools on chat: tool_choice "none" shows them and answers text; strict true or false, the arguments follow the parameters', async () => {
    const parameters = {
      type: "object",
      properties: { city: { type: "string", enum: ["Oslo", "Rome"] } },
      required: ["city"],
      additionalProperties: false,
    };
    const tools = (strict: boolean) => [
      { type: "function", function: { name: "get_weather", parameters, strict } },
    ];
    const plain = await post("/v1/chat/completions", {
      messages: user,
      max_tokens: 4,
      temperature: 0,
      return_token_ids: true,
    });
    const none = await post("/v1/chat/completions", {
      messages: user,
      max_tokens: 4,
      temperature: 0,
      return_token_ids: true,
      tools: tools(true),
      tool_choice: "none",
    });
    assert.equal(none.json.choices[0].message.tool_calls, undefined);
    assert.ok(none.json.prompt_token_ids.length > plain.json.prompt_token_ids.length, "the tools are shown");
    for (const strict of [true, false]) {
      const res = await post("/v1/chat/completions", {
        messages: user,
        max_tokens: 80,
        temperature: 0,
        tools: tools(strict),
        tool_choice: { type: "function", function: { name: "get_weather" } },
      });
      const call = res.json.choices[0].message.tool_calls[0];
      assert.equal(call.function.name, "get_weather");
      assert.ok(["Oslo", "Rome"].includes(JSON.parse(call.function.arguments).city), call.function.arguments);
    }
  });

  test("/tokenize's messages form renders tools as chat does (the same prompt ids); return_token_strs", async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "Weather",
          parameters: { type: "object", properties: {} },
        },
      },
    ];
    const chat = await post("/v1/chat/completions", {
      messages: user,
      max_tokens: 1,
      tools,
      return_token_ids: true,
    });
    const tok = await post("/tokenize", { messages: user, tools });
    const plain = await post("/tokenize", { messages: user });
    assert.deepEqual(tok.json.tokens, chat.json.prompt_token_ids);
    assert.ok(tok.json.count > plain.json.count, "the tools are in the prompt");
    assert.ok(llm.tokenizer.decode(tok.json.tokens).includes("Weather"), "with their descriptions");
    const strs = await post("/tokenize", { messages: user, return_token_strs: true });
    assert.deepEqual(
      strs.json.token_strs,
      strs.json.tokens.map((id: number) => llm.tokenizer.idToToken(id)),
    );
  });

  test("a field /generate, /tokenize or /detokenize does not have is a 400 naming it", async () => {
    for (const [path, body, field] of [
      ["/generate", { prompt: "Hi", prompt_logprobs: 1 }, "prompt_logprobs"],
      ["/generate", { prompt: "Hi", best_of: 2 }, "best_of"],
      ["/tokenize", { prompt: "Hi", add_generation_prompt: true }, "add_generation_prompt"],
      ["/tokenize", { messages: user, chat_template: "x" }, "chat_template"],
      ["/detokenize", { tokens: [1], skip_special_tokens: false }, "skip_special_tokens"],
    ] as const) {
      const res = await post(path, body);
      assert.equal(res.status, 400, `${path} ${field}`);
      assert.equal(res.json.error.param, field);
    }
  });

  test("length_penalty on chat ranks the beams as the library's beam search with that penalty", async () => {
    for (const lengthPenalty of [0.2, 2]) {
      const res = await post("/v1/chat/completions", {
        messages: user,
        max_tokens: 8,
        n: 3,
        use_beam_search: true,
        length_penalty: lengthPenalty,
      });
      const expected = await llm.beamSearch(
        { messages: user },
        { beamWidth: 3, maxTokens: 8, lengthPenalty },
      );
      assert.deepEqual(
        res.json.choices.map((c: { message: { content: string } }) => c.message.content),
        expected.sequences.map((s) => s.text),
      );
    }
  });
});

describe("/v1/responses fields", () => {
  test('text.format: "text" constrains nothing, "json_object" gives an object, json_schema holds with strict false', async () => {
    const plain = await text({ input: "Yes or no?" });
    assert.equal(await text({ input: "Yes or no?", text: { format: { type: "text" } } }), plain);
    const object = await text({
      input: "Yes or no?",
      max_output_tokens: 4,
      text: { format: { type: "json_object" } },
    });
    assert.ok(object.trimStart().startsWith("{"), object);
    const schema = { type: "string", enum: ["yes", "no"] };
    const loose = await text({
      input: "Yes or no?",
      text: {
        format: { type: "json_schema", name: "answer", schema, strict: false, description: "an answer" },
      },
    });
    assert.ok(["yes", "no"].includes(JSON.parse(loose)), loose);
  });
  const text = async (body: Record<string, unknown>) => {
    const res = await post("/v1/responses", { max_output_tokens: 6, temperature: 0, ...body });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return res.json.output[0].content[0].text as string;
  };
  test("message items with type and input_text / output_text parts are the same conversation as plain strings", async () => {
    const plain = await text({
      input: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
        { role: "user", content: "Tell me a fortune." },
      ],
    });
    const typed = await text({
      input: [
        { type: "message", role: "user", content: [{ type: "input_text", text: "Hi" }] },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: "Hello." }] },
        { type: "message", role: "user", content: [{ type: "input_text", text: "Tell me a fortune." }] },
      ],
    });
    assert.equal(typed, plain);
  });
  test('with no tools, tool_choice "none" / "auto", parallel_tool_calls and truncation "disabled" answer as without them', async () => {
    const plain = await text({ input: "Tell me a fortune." });
    for (const extra of [
      { tool_choice: "none" },
      { tool_choice: "auto", parallel_tool_calls: false },
      { parallel_tool_calls: true, truncation: "disabled" },
    ]) {
      assert.equal(await text({ input: "Tell me a fortune.", ...extra }), plain, JSON.stringify(extra));
    }
  });
});

describe("output constraints on chat, completions and /generate (the forms the structured-outputs suite does not send)", () => {
  const ENUM = { type: "string", enum: ["alpha", "beta"] };
  const isPick = (text: string) => ["alpha", "beta"].includes(JSON.parse(text));
  const isYesNo = (text: string) => text === "yes" || text === "no";
  const isObjectStart = (text: string) => text.trimStart().startsWith("{");
  /** The reply text and token ids (none for /generate) of each route, greedy. */
  const routes: Record<
    string,
    (extra: Record<string, unknown>) => Promise<{ text: string; ids: number[] | null }>
  > = {
    chat: async (extra) => {
      const res = await post("/v1/chat/completions", {
        messages: [{ role: "user", content: "Pick alpha or beta." }],
        max_tokens: 12,
        temperature: 0,
        return_token_ids: true,
        ...extra,
      });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      return { text: res.json.choices[0].message.content, ids: res.json.choices[0].token_ids };
    },
    completions: async (extra) => {
      const res = await post("/v1/completions", {
        prompt: "Pick: ",
        max_tokens: 12,
        temperature: 0,
        return_token_ids: true,
        ...extra,
      });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      return { text: res.json.choices[0].text, ids: res.json.choices[0].token_ids };
    },
    generate: async (extra) => {
      const res = await post("/generate", { prompt: "Pick: ", max_tokens: 12, temperature: 0, ...extra });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      return { text: res.json.text[0].slice("Pick: ".length), ids: null };
    },
  };
  const json = (name: string, extra: Record<string, unknown> = {}) => ({
    response_format: { type: "json_schema", json_schema: { name, schema: ENUM, ...extra } },
  });
  const cases: [Record<string, unknown>, (text: string) => boolean][] = [
    [json("strict_false", { strict: false }), isPick],
    [json("described", { description: "one of two words" }), isPick],
    [{ response_format: { type: "json_object" } }, isObjectStart],
    [
      {
        structured_outputs: { json: ENUM, disable_any_whitespace: true, disable_additional_properties: true },
      },
      isPick,
    ],
    [{ structured_outputs: { json: ENUM, disable_fallback: true } }, isPick],
    [{ structured_outputs: { json: ENUM, disable_fallback: false } }, isPick],
    [{ structured_outputs: { json_object: true } }, isObjectStart],
    [{ structured_outputs: { regex: "[0-9]{3}" } }, (t) => /^[0-9]{3}$/.test(t)],
    [{ structured_outputs: { choice: ["alpha", "beta"] } }, (t) => ["alpha", "beta"].includes(t)],
    [{ structured_outputs: { grammar: 'root ::= "yes" | "no"' } }, isYesNo],
    [{ guided_json: ENUM, guided_decoding_backend: "xgrammar" }, isPick],
    [{ guided_regex: "[0-9]{3}" }, (t) => /^[0-9]{3}$/.test(t)],
    [{ guided_choice: ["alpha", "beta"] }, (t) => ["alpha", "beta"].includes(t)],
    [{ guided_grammar: 'root ::= "yes" | "no"' }, isYesNo],
  ];
  test("each constraint field holds on each route; response_format text and json_object false constrain nothing", async () => {
    for (const [route, run] of Object.entries(routes)) {
      for (const [body, check] of cases) {
        const { text } = await run(body);
        assert.ok(check(text), `${route} ${JSON.stringify(body)}: ${JSON.stringify(text)}`);
      }
      const free = await run({});
      assert.deepEqual(await run({ response_format: { type: "text" } }), free, `${route}: type text`);
      assert.deepEqual(
        await run({ structured_outputs: { json_object: false } }),
        free,
        `${route}: json_object false`,
      );
    }
  });
  test("allowed_token_ids and bad_words on each route", async () => {
    const allowed = [...new Set(llm.tokenizer.encode("alpha beta gamma", { addBos: false }))];
    for (const [route, run] of Object.entries(routes)) {
      const { text, ids } = await run({ allowed_token_ids: allowed, max_tokens: 4 });
      if (ids !== null)
        assert.ok(
          ids.every((id) => allowed.includes(id)),
          `${route}: ${ids}`,
        );
      assert.ok(/^[a-z ]*$/.test(text) && /alpha|beta|gamma/.test(text), `${route}: ${JSON.stringify(text)}`);
      const free = await run({});
      const word = free.text.trim().split(/\s+/)[0]!;
      const banned = await run({ bad_words: [word] });
      assert.ok(!banned.text.includes(word), `${route}: bad_words ${word}: ${JSON.stringify(banned.text)}`);
    }
  });
});

test("a Jinja chat template gets each message field: content parts, tool_calls (id, type, function), tool_call_id", async () => {
  const { ChatFormatter } = await import("../src/tokenizer/chat-template.js");
  const jinja = await ChatFormatter.create(llm.tokenizer, {
    template:
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}" +
      "{% for c in m.tool_calls or [] %}[{{ c.id }} {{ c.type }} {{ c.function.name }} {{ c.function.arguments.city }}]{% endfor %}" +
      "{% if m.tool_call_id %}#{{ m.tool_call_id }}{% endif %}{% endfor %}",
  });
  const other = await startTestServer(llm, { chatFormatter: jinja });
  try {
    const res = await postJson(`${other.url}/tokenize`, {
      add_generation_prompt: false,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Weather" },
            { type: "text", text: "in Oslo?" },
          ],
        },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: "call_7",
              type: "function",
              function: { name: "get_weather", arguments: '{"city": "Oslo"}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "call_7", content: "-3 C" },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const text = llm.tokenizer.decode(res.json.tokens);
    assert.equal(
      text.slice(text.indexOf("<user>")),
      "<user>Weather\nin Oslo?<assistant>[call_7 function get_weather Oslo]<tool>-3 C#call_7",
    );
  } finally {
    await other.close();
  }
});
