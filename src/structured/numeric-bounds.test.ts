/**
 * Numeric bounds through our grammar, on the demo model's vocabulary: for integers and numbers, every mix of
 * inclusive / exclusive / absent bounds around negative, zero and multi-digit values, the matcher accepts a
 * text exactly when it is a canonical JSON number (no exponent, no trailing fraction zeros) in range; XGrammar's
 * own range handling gets several of these wrong (see numeric-bounds.ts). Also the EBNF rules on their own.
 */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { type CompiledGrammar, GrammarEngine, vocabInfoFor } from "./grammar-engine.js";
import { intRange, natRange, rewriteNumericBounds } from "./numeric-bounds.js";
import { maskAllows } from "./sequence-constraint.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
const EOT = 32000;
let tokenizer: Tokenizer;
let engine: GrammarEngine;

before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
  engine = await GrammarEngine.create(await vocabInfoFor(tokenizer, 32002));
});

/** Whether the grammar takes `text` (one character a token) and may then end. */
async function accepts(g: CompiledGrammar, text: string): Promise<boolean> {
  const m = await g.newMatcher();
  try {
    for (const ch of text) if (!m.acceptToken(tokenizer.tokenToId(ch === " " ? "\u2581" : ch)!)) return false;
    const row = new Int32Array(engine.maskWords);
    await m.fillNextTokenBitmask(row);
    return maskAllows(row, EOT);
  } finally {
    m.dispose();
  }
}

// biome-ignore format: a table of values
const VALUES = [
  "0", "-0", "1", "-1", "2", "3", "-3", "-4", "-5", "-6", "9", "10", "-19", "-20", "-21", "99", "100", "101",
  "-120", "-121", "999", "1000", "1001", "12345", "-12345", "0.5", "-0.5", "2.5", "-2.5", "8.5", "9.5", "99.9",
  "100.5", "-20.5", "-19.5", "-4.5", "-5.5", "0.0", "1.0", "01", "-01", "1000.5", "1e3",
];

test("bounded integers and numbers: exactly the canonical numbers in range", async () => {
  let checks = 0;
  for (const type of ["integer", "number"] as const) {
    for (const lo of [undefined, -120, -20, -1, 0, 3, 100]) {
      for (const hi of [undefined, -5, 0, 9, 100, 1000]) {
        for (const [xl, xh] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ] as const) {
          if ((lo === undefined && hi === undefined) || (lo !== undefined && hi !== undefined && lo >= hi))
            continue;
          const s: Record<string, unknown> = { type };
          if (lo !== undefined) s[xl ? "exclusiveMinimum" : "minimum"] = lo;
          if (hi !== undefined) s[xh ? "exclusiveMaximum" : "maximum"] = hi;
          if ((lo === undefined && xl) || (hi === undefined && xh)) continue;
          const lowest = lo === undefined ? -Infinity : xl && type === "integer" ? lo + 1 : lo;
          const highest = hi === undefined ? Infinity : xh && type === "integer" ? hi - 1 : hi;
          if (lowest > highest) {
            await assert.rejects(engine.compile({ type: "json_schema", schema: s }), /no number satisfies/);
            continue;
          }
          const g = await engine.compile({ type: "json_schema", schema: s });
          for (const v of VALUES) {
            const x = Number(v);
            const canonical =
              v !== "-0" &&
              (type === "integer" ? /^-?(0|[1-9][0-9]*)$/ : /^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$/).test(v);
            const inRange =
              (lo === undefined || (xl ? x > lo : x >= lo)) && (hi === undefined || (xh ? x < hi : x <= hi));
            assert.equal(await accepts(g, v), canonical && inRange, `${JSON.stringify(s)} on ${v}`);
            checks++;
          }
        }
      }
    }
  }
  assert.ok(checks > 3000);
});

test("zod's integer bounds (safe-integer range) and bounds inside objects and arrays", async () => {
  const schema = {
    type: "object",
    properties: {
      n: { type: "integer", minimum: 0, maximum: 9007199254740991 },
      list: { type: "array", items: { type: "number", exclusiveMinimum: 0 } },
    },
    required: ["n", "list"],
    additionalProperties: false,
  };
  const g = await engine.compile({ type: "json_schema", schema });
  assert.equal(await accepts(g, '{"n": 9007199254740991, "list": [0.5, 3]}'), true);
  assert.equal(await accepts(g, '{"n": 9007199254740992, "list": []}'), false);
  assert.equal(await accepts(g, '{"n": -1, "list": []}'), false);
  assert.equal(await accepts(g, '{"n": 1, "list": [0]}'), false);
});

test("the EBNF of a range, and the rewrite that leaves enums and unbounded numbers alone", () => {
  assert.equal(natRange(3n, 7n), "(([3-7]))");
  assert.equal(natRange(5n, 2n), null);
  assert.equal(intRange(1n, -1n), null);
  assert.match(natRange(0n, null)!, /\[0-9\]\*/);
  const r = rewriteNumericBounds({
    type: "object",
    properties: {
      a: { type: "integer", minimum: 0 },
      b: { type: "integer", enum: [1, 2], minimum: 0 },
      c: { type: "number" },
    },
  });
  assert.equal(r.rules.size, 1);
  const props = (r.schema as { properties: Record<string, Record<string, unknown>> }).properties;
  assert.equal(typeof props.a!.const, "string");
  assert.deepEqual(props.b, { type: "integer", enum: [1, 2], minimum: 0 });
  assert.deepEqual(props.c, { type: "number" });
});
