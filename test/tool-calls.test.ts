/**
 * Tool calling end to end on the demo model through the official openai client: tool_choice required, named and
 * auto, streamed and not, parallel_tool_calls; every call's arguments validate (ajv) against the function's
 * schema; seeded runs repeat; tool history renders (OpenChat convention and a Jinja template); bad tool
 * requests are 400s naming the field.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ajv } from "ajv";
import OpenAI from "openai";
import type { ChatCompletionTool } from "openai/resources/chat/completions";
import type { LLM } from "../src/llm.js";
import { ChatFormatter } from "../src/tokenizer/chat-template.js";
import { loadTestModel, MODEL_NAME, postJson, startTestServer, type TestServer } from "./server-harness.js";

let llm: LLM;
let server: TestServer;
let client: OpenAI;
const ajv = new Ajv({ strict: false });

before(async () => {
  llm = await loadTestModel({ maxModelLen: 1024 });
  server = await startTestServer(llm);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
});

after(async () => {
  await server?.close();
  await llm?.dispose();
});

const weatherParams = {
  type: "object",
  properties: {
    city: { type: "string", minLength: 1, maxLength: 10 },
    unit: { enum: ["celsius", "fahrenheit"] },
    days: { type: "integer", minimum: 1, maximum: 7 },
  },
  required: ["city", "unit", "days"],
  additionalProperties: false,
};
const addParams = {
  type: "object",
  properties: {
    a: { type: "integer", minimum: -99, maximum: 99 },
    b: { type: "integer", minimum: -99, maximum: 99 },
  },
  required: ["a", "b"],
  additionalProperties: false,
};
const tools: ChatCompletionTool[] = [
  {
    type: "function",
    function: { name: "get_weather", description: "Weather forecast", parameters: weatherParams },
  },
  { type: "function", function: { name: "add", description: "Adds two integers", parameters: addParams } },
];
const schemaOf: Record<string, object> = { get_weather: weatherParams, add: addParams };
const messages = [{ role: "user" as const, content: "What is the weather in Paris?" }];

function assertCall(call: { type: string; id: string; function: { name: string; arguments: string } }): void {
  assert.equal(call.type, "function");
  assert.match(call.id, /^call_/);
  const schema = schemaOf[call.function.name];
  assert.ok(schema !== undefined, `unknown function ${call.function.name}`);
  const validate = ajv.compile(schema);
  const args = JSON.parse(call.function.arguments);
  assert.ok(validate(args), `${call.function.arguments}: ${ajv.errorsText(validate.errors)}`);
}

test('tool_choice "required": calls whose arguments validate; parallel_tool_calls false gives one; seeds repeat', async () => {
  const ask = () =>
    client.chat.completions.create({
      model: MODEL_NAME,
      messages,
      tools,
      tool_choice: "required",
      parallel_tool_calls: false,
      temperature: 1,
      seed: 21,
      max_tokens: 200,
    });
  const reply = await ask();
  const c = reply.choices[0]!;
  assert.equal(c.finish_reason, "tool_calls");
  assert.equal(c.message.tool_calls?.length, 1);
  assert.equal(c.message.content, null);
  for (const call of c.message.tool_calls!) assertCall(call as never);
  const again = (await ask()).choices[0]!;
  assert.deepEqual(
    again.message.tool_calls!.map((t) => (t as { function: unknown }).function),
    c.message.tool_calls!.map((t) => (t as { function: unknown }).function),
  );
});

test("a named tool, streamed and not: the same call, arguments valid", async () => {
  const body = {
    model: MODEL_NAME,
    messages: [{ role: "user" as const, content: "Add two and three." }],
    tools,
    tool_choice: { type: "function" as const, function: { name: "add" } },
    temperature: 1,
    seed: 5,
    max_tokens: 100,
  };
  const reply = await client.chat.completions.create(body);
  const c = reply.choices[0]!;
  assert.equal(c.finish_reason, "tool_calls");
  const call = c.message.tool_calls![0]! as {
    type: string;
    id: string;
    function: { name: string; arguments: string };
  };
  assert.equal(call.function.name, "add");
  assertCall(call);

  const stream = await client.chat.completions.create({ ...body, stream: true });
  const calls: { id?: string; name?: string; arguments: string }[] = [];
  let finish: string | null = null;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (choice === undefined) continue;
    finish = choice.finish_reason ?? finish;
    for (const d of choice.delta.tool_calls ?? []) {
      calls[d.index] ??= { arguments: "" };
      const entry = calls[d.index]!;
      entry.id ??= d.id;
      entry.name ??= d.function?.name;
      entry.arguments += d.function?.arguments ?? "";
    }
  }
  assert.equal(finish, "tool_calls");
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.name, "add");
  assert.equal(calls[0]!.arguments, call.function.arguments, "streamed = non-streamed for the same seed");
});

test('tool_choice "auto": text, or calls in the envelope whose arguments validate', async () => {
  for (const seed of [1, 2, 3, 4]) {
    const reply = await client.chat.completions.create({
      model: MODEL_NAME,
      messages,
      tools,
      temperature: 1,
      seed,
      max_tokens: 120,
    });
    const c = reply.choices[0]!;
    if (c.message.tool_calls !== undefined && c.message.tool_calls.length > 0) {
      assert.equal(c.finish_reason, "tool_calls");
      for (const call of c.message.tool_calls) assertCall(call as never);
    } else {
      assert.ok(["stop", "length"].includes(c.finish_reason), c.finish_reason);
      assert.ok(
        !(c.message.content ?? "").includes("</tool_call>"),
        "a complete call is never left in the text",
      );
    }
  }
});

test("tool history: assistant tool_calls and role tool render (OpenChat convention, Jinja gets tools)", async () => {
  const history = [
    { role: "user" as const, content: "Weather in Oslo?" },
    {
      role: "assistant" as const,
      content: null,
      tool_calls: [
        {
          id: "call_1",
          type: "function" as const,
          function: { name: "get_weather", arguments: '{"city": "Oslo", "unit": "celsius", "days": 1}' },
        },
      ],
    },
    { role: "tool" as const, tool_call_id: "call_1", content: "-3 C, snow" },
  ];
  const reply = await client.chat.completions.create({
    model: MODEL_NAME,
    messages: history,
    tools,
    max_tokens: 5,
  });
  assert.ok(reply.choices[0]!.finish_reason !== null);

  const formatter = llm.chatFormatter!;
  const shown = formatter.apply(
    [
      { role: "user", content: "Weather in Oslo?" },
      {
        role: "assistant",
        content: "",
        tool_calls: [{ id: "call_1", function: { name: "get_weather", arguments: '{"city": "Oslo"}' } }],
      },
      { role: "tool", content: "-3 C", tool_call_id: "call_1" },
    ],
    { tools: [{ name: "get_weather", description: "Weather", parameters: weatherParams }] },
  ).prompt;
  assert.match(shown, /^You can call functions\..*"name":"get_weather"/s);
  assert.ok(
    shown.includes('Assistant: <tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}</tool_call>'),
  );
  assert.ok(shown.includes('User: <tool_response id="call_1">-3 C</tool_response>'));

  const jinja = await ChatFormatter.create(llm.tokenizer, {
    template:
      "{% for t in tools %}[{{ t.function.name }}]{% endfor %}{% for m in messages %}<{{ m.role }}>{{ m.content }}" +
      "{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments.city }}{% endif %}" +
      "{% if m.tool_call_id %}#{{ m.tool_call_id }}{% endif %}{% endfor %}",
  });
  const rendered = jinja.apply(
    [
      {
        role: "assistant",
        content: "",
        tool_calls: [{ function: { name: "get_weather", arguments: '{"city": "Oslo"}' } }],
      },
      { role: "tool", content: "-3 C", tool_call_id: "call_1" },
    ],
    { tools: [{ name: "get_weather" }], addGenerationPrompt: false },
  ).prompt;
  assert.equal(rendered, "[get_weather]<assistant>Oslo<tool>-3 C#call_1");
});

test("bad tool requests are 400s naming the field", async () => {
  const cases: [object, string][] = [
    [{ tool_choice: "required" }, "tool_choice"],
    [{ tools, tool_choice: { type: "function", function: { name: "nope" } } }, "tool_choice.function.name"],
    [
      { tools: [{ type: "function", function: { name: "f", parameters: { type: "object", not: {} } } }] },
      "tools[0].function.parameters",
    ],
    [{ tools: [{ type: "function", function: { name: "bad name!" } }] }, "tools[0].function.name"],
    [{ tools, tool_choice: "required", response_format: { type: "json_object" } }, "response_format"],
    [{ tools, tool_choice: "required", use_beam_search: true, n: 2 }, "tools"],
  ];
  for (const [extra, param] of cases) {
    const r = await postJson(`${server.url}/v1/chat/completions`, {
      model: MODEL_NAME,
      messages,
      max_tokens: 5,
      ...extra,
    });
    assert.equal(r.status, 400, `${JSON.stringify(extra)} -> ${r.status} ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.param, param, JSON.stringify(r.json));
  }
});
