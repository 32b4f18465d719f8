/**
 * Structured outputs end to end on the demo model, through the official openai client and raw HTTP: zod with
 * chat.completions.parse, json_schema (nested objects, arrays, enums, required, additionalProperties false),
 * json_object, regex, choice, grammar, on chat, completions and /generate, streamed and not; every output is
 * validated with ajv against its schema; seeded runs repeat; bad constraints are 400s naming the field;
 * allowed_token_ids and bad_words change what is sampled.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ajv } from "ajv";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
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
const ajv = new Ajv({ strict: false });

before(async () => {
  llm = await loadTestModel({ maxModelLen: 512 });
  server = await startTestServer(llm);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
});

after(async () => {
  await server?.close();
  await llm?.dispose();
});

const messages = [{ role: "user" as const, content: "Describe a person as JSON." }];

/** Nested objects, arrays, enums, required, additionalProperties false, bounded strings and integers. */
const personSchema = {
  type: "object",
  properties: {
    name: { type: "string", minLength: 1, maxLength: 12 },
    age: { type: "integer", minimum: 0, maximum: 120 },
    role: { enum: ["admin", "user", "guest"] },
    tags: { type: "array", items: { type: "string", maxLength: 6 }, maxItems: 3 },
    address: {
      type: "object",
      properties: { city: { type: "string", maxLength: 10 }, zip: { type: "string", pattern: "^[0-9]{5}$" } },
      required: ["city", "zip"],
      additionalProperties: false,
    },
  },
  required: ["name", "age", "role", "tags", "address"],
  additionalProperties: false,
};

function assertValid(schema: object, text: string): unknown {
  const value = JSON.parse(text);
  const validate = ajv.compile(schema);
  assert.ok(validate(value), `${text} does not validate: ${ajv.errorsText(validate.errors)}`);
  return value;
}

test("chat.completions.parse with a zod schema: parsed and valid, seeded runs repeat", async () => {
  const Person = z.object({
    name: z.string().max(12),
    age: z.number().int().min(0).max(120),
    pets: z.array(z.enum(["cat", "dog", "fish"])).max(3),
    home: z.object({ city: z.string().max(10), floor: z.number().int().min(0).max(50) }),
  });
  const format = zodResponseFormat(Person, "person");
  const ask = () =>
    client.chat.completions.parse({
      model: MODEL_NAME,
      messages,
      response_format: format,
      temperature: 1,
      seed: 7,
      max_tokens: 300,
    });
  const first = await ask();
  const choice = first.choices[0]!;
  assert.equal(choice.finish_reason, "stop");
  assert.ok(choice.message.parsed !== null, "the client parsed the reply");
  Person.parse(choice.message.parsed);
  assertValid(format.json_schema.schema!, choice.message.content!);
  const again = await ask();
  assert.equal(again.choices[0]!.message.content, choice.message.content, "same seed, same output");
});

test("common zod schemas (int, nonnegative, positive, min(1), max, uuid, date; email) parse and validate", async () => {
  // What zod writes for these: bounds XGrammar alone gets wrong (enforced by our grammar), formats with the
  // pattern zod checks, a safe-integer range for .int().
  const Order = z.object({
    id: z.number().int().nonnegative(),
    price: z.number().positive().max(1000),
    quantity: z.number().int().positive().max(20),
    delta: z.number().int(),
    sku: z.string().min(1).max(8),
    ref: z.string().uuid(),
    day: z.string().date(),
    notes: z.array(z.string().max(6)).min(1).max(2),
  });
  const format = zodResponseFormat(Order, "order");
  const schema = format.json_schema.schema!;
  const props = (schema as { properties: Record<string, Record<string, unknown>> }).properties;
  assert.equal(props.price!.exclusiveMinimum, 0, "zod wrote an exclusive bound");
  assert.equal(props.id!.minimum, 0);
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.parse({
      model: MODEL_NAME,
      messages: [{ role: "user", content: "An order as JSON." }],
      response_format: format,
      temperature: 1,
      seed,
      max_tokens: 400,
    });
    const choice = r.choices[0]!;
    assert.equal(choice.finish_reason, "stop", choice.message.content ?? "");
    Order.parse(choice.message.parsed);
    const value = assertValid(schema, choice.message.content!) as { price: number; id: number };
    assert.ok(value.price > 0 && value.id >= 0);
  }
  // .email() compiles (zod's pattern governs its format); its pattern has no length bound and the demo model
  // does not stop inside it, so only the start of the output is checked here.
  const Contact = z.object({ email: z.string().email() });
  const r = await postJson(`${server.url}/v1/chat/completions`, {
    model: MODEL_NAME,
    messages,
    max_tokens: 12,
    seed: 1,
    response_format: zodResponseFormat(Contact, "contact"),
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.match(r.json.choices[0].message.content, /^\{"email": "[A-Za-z0-9_'+\-.]/);
});

test("a zod schema with a keyword the grammar cannot enforce is a 400 naming the keyword and its path", async () => {
  const cases: [z.ZodType, RegExp][] = [
    [z.object({ n: z.number().multipleOf(5) }), /\/properties\/n\/multipleOf: multipleOf is not supported/],
    [
      z.object({
        s: z
          .string()
          .regex(/^[a-z]+$/)
          .min(2),
      }),
      /\/properties\/s\/minLength: minLength together with pattern/,
    ],
    [z.object({ x: z.number().gt(0.5) }), /\/properties\/x\/exclusiveMinimum: .*not a whole number/],
  ];
  for (const [schema, reason] of cases) {
    const err = await client.chat.completions
      .parse({ model: MODEL_NAME, messages, response_format: zodResponseFormat(schema as z.ZodObject, "x") })
      .then(
        () => null,
        (e: unknown) => e,
      );
    assert.ok(err instanceof OpenAI.BadRequestError, String(err));
    assert.equal((err.error as { param?: string }).param, "response_format.json_schema.schema");
    assert.match(err.message, reason);
  }
});

test("/health answers in time while a new schema compiles (the compile runs on a grammar worker)", async (t) => {
  // A schema not seen before, big enough that XGrammar's compile takes a while (bounded repetitions in
  // patterns: ~0.8 s alone on the VM).
  const properties: Record<string, unknown> = {};
  for (let i = 0; i < 12; i++)
    properties[`field_${i}`] = { type: "string", pattern: `^[a-z]{${2 + i},${30 + i}}$` };
  const schema = {
    type: "object",
    properties,
    required: Object.keys(properties),
    additionalProperties: false,
  };
  const t0 = performance.now();
  let doneAt = 0;
  const request = postJson(`${server.url}/v1/chat/completions`, {
    model: MODEL_NAME,
    messages,
    max_tokens: 1,
    response_format: { type: "json_schema", json_schema: { name: "wide", schema } },
  }).then((r) => {
    doneAt = performance.now();
    return r;
  });
  const latencies: number[] = [];
  while (doneAt === 0) {
    const h0 = performance.now();
    const h = await fetch(`${server.url}/health`);
    assert.equal(h.status, 200);
    latencies.push(performance.now() - h0);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const r = await request;
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const compileMs = doneAt - t0;
  const worst = Math.max(...latencies);
  t.diagnostic(
    `compile + 1 token: ${compileMs.toFixed(0)} ms; /health: ${latencies.length} calls, worst ${worst.toFixed(1)} ms`,
  );
  assert.ok(compileMs > 300, `the request took ${compileMs.toFixed(0)} ms: long enough to measure anything`);
  assert.ok(latencies.length >= 5, `${latencies.length} /health calls`);
  assert.ok(
    worst < 250,
    `/health took up to ${worst.toFixed(0)} ms during a ${compileMs.toFixed(0)} ms compile`,
  );
});

test("json_schema on chat, non-streamed (n = 2) and streamed: every output validates", async () => {
  const response_format = {
    type: "json_schema" as const,
    json_schema: { name: "person", schema: personSchema, strict: true },
  };
  const reply = await client.chat.completions.create({
    model: MODEL_NAME,
    messages,
    response_format,
    n: 2,
    temperature: 1,
    seed: 11,
    max_tokens: 300,
  });
  assert.equal(reply.choices.length, 2);
  for (const c of reply.choices) {
    assert.equal(c.finish_reason, "stop");
    assertValid(personSchema, c.message.content!);
  }
  assert.notEqual(reply.choices[0]!.message.content, reply.choices[1]!.message.content);

  const stream = await client.chat.completions.create({
    model: MODEL_NAME,
    messages,
    response_format,
    temperature: 1,
    seed: 11,
    max_tokens: 300,
    stream: true,
  });
  let text = "";
  let finish: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, "stop");
  assertValid(personSchema, text);
  assert.equal(text, reply.choices[0]!.message.content, "streamed = non-streamed for the same seed");
});

test("logprobs under a grammar are of the constrained distribution", async () => {
  const ask = (constrained: boolean) =>
    client.chat.completions.create({
      model: MODEL_NAME,
      messages,
      ...(constrained ? { response_format: { type: "json_object" as const } } : {}),
      temperature: 0,
      max_tokens: constrained ? 60 : 1,
      logprobs: true,
      top_logprobs: 5,
    });
  const reply = await ask(true);
  const c = reply.choices[0]!;
  if (c.finish_reason === "stop") assertValid({ type: "object" }, c.message.content!);
  // Only tokens that open an object are allowed first: they hold all the probability among themselves.
  const first = c.logprobs!.content![0]!;
  assert.ok(first.token.startsWith("{"), first.token);
  const allowed = first.top_logprobs.filter((alt) => alt.logprob > -9999); // -9999: OpenAI's -inf
  for (const alt of allowed) assert.ok(alt.token.startsWith("{"), `alternative ${JSON.stringify(alt.token)}`);
  const mass = allowed.reduce((sum, alt) => sum + Math.exp(alt.logprob), 0);
  assert.ok(mass <= 1 + 1e-4 && mass > 0.5, `constrained top mass ${mass}`);
  // Unconstrained, the same opening token is far less likely.
  const free = (await ask(false)).choices[0]!.logprobs!.content![0]!;
  const freeLp = free.top_logprobs.find((alt) => alt.token === first.token)?.logprob ?? -Infinity;
  assert.ok(freeLp < first.logprob, `raw ${freeLp} vs constrained ${first.logprob}`);
});

test("regex, choice and grammar through structured_outputs and guided_* on chat", async () => {
  const regex = "[A-Z]{3}-[0-9]{3}";
  const r = await postJson(`${server.url}/v1/chat/completions`, {
    model: MODEL_NAME,
    messages,
    structured_outputs: { regex },
    temperature: 1,
    seed: 3,
    max_tokens: 20,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.match(r.json.choices[0].message.content, new RegExp(`^${regex}$`));
  assert.equal(r.json.choices[0].finish_reason, "stop");

  const choices = ["red", "green", "blue sky"];
  for (const body of [{ guided_choice: choices }, { structured_outputs: { choice: choices } }]) {
    const c = await postJson(`${server.url}/v1/chat/completions`, {
      model: MODEL_NAME,
      messages,
      ...body,
      temperature: 1,
      seed: 5,
      max_tokens: 10,
    });
    assert.equal(c.status, 200, JSON.stringify(c.json));
    assert.ok(choices.includes(c.json.choices[0].message.content), c.json.choices[0].message.content);
  }

  const grammar = 'root ::= "(" num (("+" | "*") num)* ")"\nnum ::= [1-9] [0-9]?';
  const g = await postJson(`${server.url}/v1/chat/completions`, {
    model: MODEL_NAME,
    messages,
    guided_grammar: grammar,
    temperature: 1,
    seed: 2,
    max_tokens: 40,
  });
  assert.equal(g.status, 200, JSON.stringify(g.json));
  if (g.json.choices[0].finish_reason === "stop") {
    assert.match(g.json.choices[0].message.content, /^\([1-9][0-9]?([+*][1-9][0-9]?)*\)$/);
  }
});

test("completions and /generate take response_format and structured_outputs", async () => {
  const schema = {
    type: "object",
    properties: { ok: { type: "boolean" } },
    required: ["ok"],
    additionalProperties: false,
  };
  const completion = await client.completions.create({
    model: MODEL_NAME,
    prompt: "User: Is it raining? Answer as JSON.<|end_of_turn|>Assistant:",
    max_tokens: 30,
    temperature: 1,
    seed: 1,
    // @ts-expect-error response_format on completions is a vLLM extension
    response_format: { type: "json_schema", json_schema: { name: "answer", schema } },
  });
  assert.equal(completion.choices[0]!.finish_reason, "stop");
  assertValid(schema, completion.choices[0]!.text);

  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: MODEL_NAME,
      prompt: "The answer:",
      max_tokens: 30,
      temperature: 1,
      seed: 4,
      stream: true,
      structured_outputs: { json: schema },
    }),
  });
  const events = (await readSse(res)).filter((e) => e !== "[DONE]") as { choices: { text: string }[] }[];
  assertValid(schema, events.map((e) => e.choices[0]?.text ?? "").join(""));

  const gen = await postJson(`${server.url}/generate`, {
    prompt: "Pick: ",
    structured_outputs: { choice: ["alpha", "beta"] },
    temperature: 1,
    seed: 9,
    max_tokens: 10,
  });
  assert.equal(gen.status, 200, JSON.stringify(gen.json));
  assert.ok(["Pick: alpha", "Pick: beta"].includes(gen.json.text[0]), gen.json.text[0]);
});

test("a constraint that cannot be compiled is a 400 naming the field and the reason", async () => {
  const cases: [object, string, RegExp][] = [
    [{ structured_outputs: { regex: "[a-z" } }, "structured_outputs.regex", /Regex parsing error/],
    [{ guided_grammar: "root ::= missing" }, "guided_grammar", /Rule "missing" is not defined/],
    [{ guided_json: "{not json" }, "guided_json", /not valid JSON/],
    [
      { response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "wat" } } } },
      "response_format.json_schema.schema",
      /Unsupported type "wat"/,
    ],
    [
      {
        response_format: {
          type: "json_schema",
          json_schema: { name: "x", schema: { type: "array", uniqueItems: true } },
        },
      },
      "response_format.json_schema.schema",
      /uniqueItems/,
    ],
    [{ guided_regex: "a+", guided_choice: ["a"] }, "guided_choice", /Only one output constraint/],
    [{ structured_outputs: { structural_tag: {} } }, "structured_outputs.structural_tag", /not supported/],
    [{ guided_decoding_backend: "outlines", guided_regex: "a" }, "guided_decoding_backend", /xgrammar/],
    [{ response_format: { type: "yaml" } }, "response_format.type", /json_schema/],
  ];
  for (const [extra, param, reason] of cases) {
    const r = await postJson(`${server.url}/v1/chat/completions`, {
      model: MODEL_NAME,
      messages,
      max_tokens: 5,
      ...extra,
    });
    assert.equal(r.status, 400, `${JSON.stringify(extra)} -> ${r.status}`);
    assert.equal(r.json.error.param, param, JSON.stringify(r.json));
    assert.match(r.json.error.message, reason);
  }
  const beam = await postJson(`${server.url}/v1/completions`, {
    model: MODEL_NAME,
    prompt: "x",
    use_beam_search: true,
    n: 2,
    guided_regex: "a",
  });
  assert.equal(beam.status, 400);
  assert.equal(beam.json.error.param, "guided_regex");
});

test("allowed_token_ids and bad_words (vLLM) change what is sampled", async () => {
  const allowed = llm.tokenizer.encode("1 2 3", { addBos: false });
  const base = { model: MODEL_NAME, prompt: "Count:", max_tokens: 12, temperature: 1, seed: 8 };
  const a = await postJson(`${server.url}/v1/completions`, {
    ...base,
    allowed_token_ids: allowed,
    return_token_ids: undefined,
  });
  assert.equal(a.status, 200, JSON.stringify(a.json));
  const ids = llm.tokenizer.encode(`x${a.json.choices[0].text}`, { addBos: false }).slice(1);
  assert.ok(a.json.choices[0].text.length > 0);
  for (const ch of a.json.choices[0].text)
    assert.ok("123 ".includes(ch), `unexpected ${JSON.stringify(ch)} (${ids})`);

  const free = await postJson(`${server.url}/v1/completions`, { ...base, temperature: 0 });
  const words = free.json.choices[0].text.trim().split(/\s+/).slice(0, 2) as string[];
  assert.ok(words.length > 0);
  const banned = await postJson(`${server.url}/v1/completions`, {
    ...base,
    temperature: 0,
    bad_words: words,
  });
  assert.equal(banned.status, 200, JSON.stringify(banned.json));
  for (const w of words) {
    assert.ok(
      !banned.json.choices[0].text.includes(` ${w}`),
      `"${w}" in ${JSON.stringify(banned.json.choices[0].text)}`,
    );
  }
  const bad = await postJson(`${server.url}/v1/completions`, { ...base, allowed_token_ids: [99999] });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, "allowed_token_ids");
});

test("the same through the library: generate, chat (tools) and stream take the constraints", async () => {
  const responseFormat = {
    type: "json_schema" as const,
    json_schema: { name: "person", schema: personSchema },
  };
  const prompt = "User: Describe a person as JSON.<|end_of_turn|>Assistant:";
  const [a, b] = await llm.generate([prompt, prompt], {
    responseFormat,
    temperature: 1,
    seed: 3,
    maxTokens: 300,
  });
  for (const r of [a!, b!]) {
    assert.equal(r.finishReason, "stop");
    assertValid(personSchema, r.text);
  }
  assert.equal(a!.text, b!.text, "same seed, same output");

  const code = await llm.chat(messages, {
    structuredOutputs: { regex: "[a-z]{2}-[0-9]{2}" },
    temperature: 1,
    seed: 1,
  });
  assert.match(code.text, /^[a-z]{2}-[0-9]{2}$/);

  let streamed = "";
  for await (const chunk of llm.stream(prompt, { responseFormat, temperature: 1, seed: 3, maxTokens: 300 })) {
    streamed += chunk.textDelta;
  }
  assert.equal(streamed, a!.text);

  const params = {
    type: "object",
    properties: { n: { type: "integer", minimum: 0, maximum: 9 } },
    required: ["n"],
  };
  const called = await llm.chat([{ role: "user", content: "Pick a number." }], {
    tools: [{ name: "pick", parameters: params }],
    toolChoice: "required",
    temperature: 1,
    seed: 2,
    maxTokens: 100,
  });
  assert.equal(called.toolCalls?.length, 1);
  assert.equal(called.toolCalls![0]!.name, "pick");
  assertValid(params, called.toolCalls![0]!.arguments);

  await assert.rejects(
    llm.generate("x", {
      responseFormat: { type: "json_schema", json_schema: { name: "x", schema: { type: "wat" } } },
    }),
    (err: Error & { param?: string }) =>
      err.param === "responseFormat.json_schema.schema" && /wat/.test(err.message),
  );
  await assert.rejects(
    llm.chat(messages, { tools: [{ name: "f" }], toolChoice: { name: "g" } }),
    (err: Error & { param?: string }) => err.param === "toolChoice.function.name",
  );
});
