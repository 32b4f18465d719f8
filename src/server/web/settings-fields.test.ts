import assert from "node:assert/strict";
import { test } from "node:test";
import { requestParams, SAMPLING_FIELDS, SettingsError } from "./settings-fields.js";

test("every filled field becomes its API field; empty ones are not sent", () => {
  assert.deepEqual(requestParams({}), {});
  assert.deepEqual(requestParams({ temperature: "", "top-k": "  ", "ignore-eos": false }), {});
  assert.deepEqual(
    requestParams({
      temperature: "0.7",
      "top-p": "0.9",
      "top-k": "40",
      "min-p": "0.05",
      "repetition-penalty": "1.1",
      "presence-penalty": "0.5",
      "frequency-penalty": "-0.5",
      seed: "1234",
      "max-tokens": "64",
      "min-tokens": "2",
      "stop-strings": "END\n\n\\n\\nUser:",
      "ignore-eos": true,
      "logit-bias": '{"13": -100}',
      "json-schema": '{"type": "object"}',
    }),
    {
      temperature: 0.7,
      top_p: 0.9,
      top_k: 40,
      min_p: 0.05,
      repetition_penalty: 1.1,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      seed: 1234,
      max_tokens: 64,
      min_tokens: 2,
      stop: ["END", "\n\nUser:"],
      ignore_eos: true,
      logit_bias: { "13": -100 },
      response_format: { type: "json_schema", json_schema: { name: "schema", schema: { type: "object" } } },
    },
  );
});

test("the panel covers the API's sampling fields", () => {
  const wire = new Set(SAMPLING_FIELDS.map((f) => f.wire));
  for (const name of [
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "max_tokens",
    "min_tokens",
    "stop",
    "ignore_eos",
    "logit_bias",
    "response_format",
  ])
    assert.ok(wire.has(name), `${name} has a field`);
  assert.equal(new Set(SAMPLING_FIELDS.map((f) => f.id)).size, SAMPLING_FIELDS.length, "ids are unique");
});

test("a bad value is a SettingsError naming the field", () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ "top-k": "2.5" }, "top-k", /Top-k: '2.5' is not a whole number/],
    [{ temperature: "hot" }, "temperature", /Temperature: 'hot' is not a number/],
    [{ temperature: "3" }, "temperature", /Temperature: 3 is above 2/],
    [{ "max-tokens": "0" }, "max-tokens", /Max tokens: 0 is below 1/],
    [{ "logit-bias": "[1]" }, "logit-bias", /Logit bias: must be a JSON object/],
    [{ "json-schema": "{type: object}" }, "json-schema", /JSON schema: not valid JSON/],
    [
      { "stop-strings": Array.from({ length: 17 }, (_, i) => `s${i}`).join("\n") },
      "stop-strings",
      /at most 16/,
    ],
  ];
  for (const [values, id, message] of cases) {
    assert.throws(
      () => requestParams(values),
      (err: unknown) => err instanceof SettingsError && err.fieldId === id && message.test(err.message),
      JSON.stringify(values),
    );
  }
});
