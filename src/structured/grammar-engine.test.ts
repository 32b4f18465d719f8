/**
 * The grammar engine on the demo model's real vocabulary: masks, accept, termination, rollback, errors, the
 * probe's recovery from XGrammar aborts, and the schema keywords we refuse because XGrammar ignores them.
 */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import type { ConstraintSpec } from "./constraint-spec.js";
import { GrammarEngine, GrammarError, type GrammarMatcher, vocabInfoFor } from "./grammar-engine.js";
import { checkSchemaSupported } from "./schema-support.js";
import { maskAllows } from "./sequence-constraint.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
let tokenizer: Tokenizer;
let engine: GrammarEngine;
const EOT = 32000;

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
  engine = await GrammarEngine.create(await vocabInfoFor(tokenizer, 32002));
});

/** Token ids spelling text one character each (byte-fallback tokens where a character has no piece). */
function charTokens(text: string): number[] {
  const ids: number[] = [];
  for (const ch of text) {
    const id = tokenizer.tokenToId(ch === " " ? "\u2581" : ch);
    if (id !== undefined) ids.push(id);
    else
      for (const b of Buffer.from(ch))
        ids.push(tokenizer.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`)!);
  }
  return ids;
}

/** Feeds text through the matcher token by token (the tokenizer's own split), checking each is in the mask. */
async function feed(m: GrammarMatcher, text: string): Promise<void> {
  const row = new Int32Array(engine.maskWords);
  for (const id of charTokens(text)) {
    await m.fillNextTokenBitmask(row);
    assert.ok(
      maskAllows(row, id),
      `token ${id} (${tokenizer.idToToken(id)}) of ${JSON.stringify(text)} masked out`,
    );
    assert.equal(m.acceptToken(id), true);
  }
}

async function accepts(spec: ConstraintSpec, text: string): Promise<boolean> {
  const m = await (await engine.compile(spec)).newMatcher();
  try {
    const ids = charTokens(text);
    for (const id of ids) if (!m.acceptToken(id)) return false;
    const row = new Int32Array(engine.maskWords);
    await m.fillNextTokenBitmask(row);
    return maskAllows(row, EOT);
  } finally {
    m.dispose();
  }
}

test("vocabulary of the demo model: SentencePiece byte fallback with a prepended space", async () => {
  const info = await vocabInfoFor(tokenizer, 32002);
  assert.equal(info.vocabType, "byte_fallback");
  assert.equal(info.prependSpace, true);
  assert.equal(info.pieces.length, 32002);
  assert.equal(engine.maskWords, 1001);
  assert.ok(info.stopTokenIds.includes(EOT));
});

test("json schema: the mask allows exactly the grammar's continuations, the stop token ends it", async () => {
  const schema = {
    type: "object",
    properties: { name: { type: "string", maxLength: 8 }, kind: { enum: ["cat", "dog"] } },
    required: ["name", "kind"],
    additionalProperties: false,
  };
  const compiled = await engine.compile({ type: "json_schema", schema });
  const m = await compiled.newMatcher();
  const row = new Int32Array(engine.maskWords);
  await m.fillNextTokenBitmask(row);
  const open = tokenizer.tokenToId("{")!;
  assert.ok(maskAllows(row, open));
  assert.ok(!maskAllows(row, tokenizer.tokenToId("a")!));
  assert.ok(!maskAllows(row, EOT), "an empty output is not valid");
  await feed(m, '{"name": "Tom", "kind": "cat"}');
  await m.fillNextTokenBitmask(row);
  let allowed = 0;
  for (let t = 0; t < 32002; t++) if (maskAllows(row, t)) allowed++;
  assert.ok(maskAllows(row, EOT));
  assert.equal(allowed, tokenizer.stopTokenIds.length, "after the object only stop tokens remain");
  assert.equal(m.isTerminated(), false);
  assert.equal(m.acceptToken(tokenizer.tokenToId("a")!), false, "a rejected token changes nothing");
  assert.equal(m.acceptToken(EOT), true);
  assert.equal(m.isTerminated(), true);
  m.rollback(1);
  assert.equal(m.isTerminated(), false, "rollback undoes the stop token");
  m.dispose();
  assert.equal(
    await engine.compile({ type: "json_schema", schema }),
    compiled,
    "compiled once, cached by text",
  );
});

test("json schema constraints hold: enums, required, additionalProperties false, arrays, nested, bounds", async () => {
  const schema = {
    type: "object",
    properties: {
      n: { type: "integer", minimum: 1, maximum: 9 },
      tags: { type: "array", items: { type: "string", enum: ["a", "b"] }, minItems: 1, maxItems: 2 },
      inner: {
        type: "object",
        properties: { ok: { type: "boolean" } },
        required: ["ok"],
        additionalProperties: false,
      },
    },
    required: ["n", "tags", "inner"],
    additionalProperties: false,
  };
  const spec: ConstraintSpec = { type: "json_schema", schema };
  assert.equal(await accepts(spec, '{"n": 3, "tags": ["a"], "inner": {"ok": true}}'), true);
  assert.equal(await accepts(spec, '{"n": 10, "tags": ["a"], "inner": {"ok": true}}'), false, "maximum");
  assert.equal(await accepts(spec, '{"n": 3, "tags": [], "inner": {"ok": true}}'), false, "minItems");
  assert.equal(await accepts(spec, '{"n": 3, "tags": ["c"], "inner": {"ok": true}}'), false, "enum");
  assert.equal(await accepts(spec, '{"n": 3, "tags": ["a"]}'), false, "required");
  assert.equal(
    await accepts(spec, '{"n": 3, "tags": ["a"], "inner": {"ok": true, "x": 1}}'),
    false,
    "additional",
  );
  assert.equal(await accepts({ type: "json_object" }, '{"any": [1, {"x": null}]}'), true);
  assert.equal(await accepts({ type: "json_object" }, "[1]"), false);
});

test("regex, choice and EBNF grammars", async () => {
  assert.equal(await accepts({ type: "regex", pattern: "[0-9]{3}-[A-Z]{2}" }, "123-AB"), true);
  assert.equal(await accepts({ type: "regex", pattern: "[0-9]{3}-[A-Z]{2}" }, "12-AB"), false);
  assert.equal(await accepts({ type: "choice", choices: ["yes", 'no "way"'] }, 'no "way"'), true);
  assert.equal(await accepts({ type: "choice", choices: ["yes", "no"] }, "maybe"), false);
  const ebnf = 'root ::= "(" num ("+" num)* ")"\nnum ::= [0-9]+';
  assert.equal(await accepts({ type: "grammar", ebnf }, "(1+22)"), true);
  assert.equal(await accepts({ type: "grammar", ebnf }, "(1+)"), false);
});

test("tool calls: required (one, or several when parallel) and auto (free text, or calls after a trigger)", async () => {
  const tag = (name: string) => ({
    begin: `<tool_call>{"name": "${name}", "arguments": `,
    schema: {
      type: "object",
      properties: { x: { type: "integer" } },
      required: ["x"],
      additionalProperties: false,
    },
    end: "}</tool_call>",
  });
  const spec = (required: boolean, parallel: boolean): ConstraintSpec => ({
    type: "tool_calls",
    tags: [tag("f"), tag("g")],
    triggers: ["<tool_call>"],
    required,
    parallel,
  });
  const one = '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>';
  const two = `${one}\n<tool_call>{"name": "g", "arguments": {"x": 2}}</tool_call>`;
  assert.equal(await accepts(spec(true, false), one), true);
  assert.equal(await accepts(spec(true, false), two), false);
  assert.equal(await accepts(spec(true, true), two), true);
  assert.equal(await accepts(spec(true, true), "Just text."), false);
  assert.equal(
    await accepts(spec(true, false), '<tool_call>{"name": "h", "arguments": {"x": 1}}</tool_call>'),
    false,
  );
  assert.equal(
    await accepts(spec(true, false), '<tool_call>{"name": "f", "arguments": {"y": 1}}</tool_call>'),
    false,
  );
  assert.equal(await accepts(spec(false, false), "Just text."), true);
  assert.equal(await accepts(spec(false, false), `Hi ${one}`), true);
  assert.equal(await accepts(spec(false, false), `Hi ${two}`), false);
  assert.equal(await accepts(spec(false, true), `Hi ${two}`), true);
});

test("bad grammars are GrammarErrors with XGrammar's reason; the engine keeps working after many", async () => {
  const bad: [ConstraintSpec, RegExp][] = [
    [{ type: "regex", pattern: "[a-z]+(\\d" }, /parenthesis is not closed/],
    [{ type: "regex", pattern: "(?=a)b" }, /Lookahead is not supported/],
    [{ type: "grammar", ebnf: "root ::= foo" }, /Rule "foo" is not defined/],
    [{ type: "json_schema", schema: { type: "foo" } }, /Unsupported type "foo"/],
    [{ type: "json_schema", schema: { $ref: "#/$defs/missing" } }, /missing/],
    [{ type: "choice", choices: [] }, /at least one choice/],
    [
      { type: "json_schema", schema: { type: "number", multipleOf: 3 } },
      /\/multipleOf: multipleOf is not supported/,
    ],
  ];
  for (const [spec, reason] of bad) {
    await assert.rejects(
      engine.compile(spec),
      (err: Error) => err instanceof GrammarError && reason.test(err.message),
    );
  }
  // XGrammar aborts corrupt an instance within ~90 aborts; the probe absorbs them and is replaced each time.
  for (let i = 0; i < 120; i++) {
    await assert.rejects(
      engine.compile({ type: "grammar", ebnf: `root ::= undefined_rule_${i}` }),
      GrammarError,
    );
  }
  assert.equal(await accepts({ type: "regex", pattern: "ok[0-9]" }, "ok7"), true);
});

test("schema keywords XGrammar would ignore are refused with their path", () => {
  assert.throws(
    () => checkSchemaSupported({ properties: { a: { uniqueItems: true } } }),
    /\/properties\/a\/uniqueItems/,
  );
  assert.throws(() => checkSchemaSupported({ type: "string", format: "color" }), /format "color"/);
  assert.throws(
    () => checkSchemaSupported({ type: "number", minimum: 0.5 }),
    /minimum that is not a whole number/,
  );
  assert.throws(
    () => checkSchemaSupported({ properties: { a: { type: ["integer", "null"], minimum: 0 } } }),
    (err: Error) => err.message.startsWith("/properties/a/minimum:"),
  );
  assert.throws(
    () => checkSchemaSupported({ type: "integer", exclusiveMinimum: 3, exclusiveMaximum: 4 }),
    /no number/,
  );
  assert.throws(
    () => checkSchemaSupported({ type: "string", pattern: "^a+$", minLength: 2 }),
    /minLength together with pattern/,
  );
  assert.throws(() => checkSchemaSupported({ type: "number", multipleOf: 5 }), /multipleOf/);
  // What zod writes: bounds on integers and numbers, formats beside the pattern zod checks.
  checkSchemaSupported({ type: "integer", minimum: 0 });
  checkSchemaSupported({ type: "number", exclusiveMinimum: 0 });
  checkSchemaSupported({ type: "string", format: "email", pattern: "^[a-z]+@[a-z]+$" });
  checkSchemaSupported({ type: "string", format: "starts_with", pattern: "^ab.*" });
  assert.throws(() => checkSchemaSupported({ allOf: [{}, {}] }), /allOf/);
  assert.throws(() => checkSchemaSupported({ not: {} }), /not is not supported/);
  // Property names that look like keywords are names, not keywords.
  checkSchemaSupported({ type: "object", properties: { not: { type: "string" }, if: { type: "integer" } } });
  checkSchemaSupported({ type: "integer", minimum: 0, maximum: 5 });
});

test("a length beside a format is refused: XGrammar's format grammars ignore minLength / maxLength", async () => {
  // The counter-example a grammar that ignores the bound would accept.
  const email = { type: "json_schema", schema: { type: "string", format: "email", maxLength: 8 } } as const;
  await assert.rejects(
    async () => accepts(email, '"abcdefghij@example.com"'),
    (err: unknown) =>
      err instanceof GrammarError && /\/maxLength: maxLength together with format/.test(err.message),
  );
  assert.throws(
    () => checkSchemaSupported({ properties: { d: { type: "string", format: "date", minLength: 20 } } }),
    /\/properties\/d\/minLength: minLength together with format/,
  );
  // Beside a pattern, the format is dropped and the pattern governs (the length then refused as before).
  checkSchemaSupported({ type: "string", format: "email", pattern: "^[a-z]+@[a-z]+$" });
});

test("a string length that is not a non-negative integer is refused with its path, not a cryptic or silent answer", async () => {
  for (const [key, value] of [
    ["maxLength", -1], // XGrammar took -1 as no bound
    ["maxLength", 2.5], // XGrammar threw a bare number
    ["minLength", "3"],
    ["minLength", -1],
  ] as const) {
    await assert.rejects(
      engine.compile({
        type: "json_schema",
        schema: { type: "object", properties: { s: { type: "string", [key]: value } } },
      }),
      (err: unknown) =>
        err instanceof GrammarError &&
        err.message.includes(`/properties/s/${key}: ${key} must be a non-negative integer`),
      `${key}: ${value}`,
    );
  }
  checkSchemaSupported({ type: "object", properties: { maxLength: { type: "string", maxLength: 0 } } });
});
