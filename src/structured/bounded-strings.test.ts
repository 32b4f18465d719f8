/**
 * Length-bounded strings as a chain of rules: the rewrite of XGrammar's EBNF, and on the demo vocabulary the
 * same masks as XGrammar's own form along seeded random walks through a schema (every state visited compared),
 * with strings held to their bounds.
 */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { expandBoundedStrings, MAX_EXPANDED_LENGTH } from "./bounded-strings.js";
import { GrammarEngine, vocabInfoFor } from "./grammar-engine.js";
import { applyNumericRules, rewriteNumericBounds } from "./numeric-bounds.js";
import { loadXgrammar } from "./xgrammar-runtime.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
const VOCAB = 32002;
const CHAR = '[^"\\\\\\r\\n]';
const JSON_CHAR = '[^\\0-\\x1f"\\\\\\r\\n]';

test("a bounded string becomes its mandatory characters and a shared chain of tails", () => {
  const ebnf = [
    'root ::= "{" "\\"a\\"" ": " s1 ", " "\\"b\\"" ": " s2 "}"',
    `s1 ::= "\\"" ${CHAR}{0,3} "\\""`,
    `s2 ::= "\\"" ${CHAR}{2,4} "\\""`,
  ].join("\n");
  const out = expandBoundedStrings(ebnf).split("\n");
  assert.equal(out[1], 's1 ::= "\\"" awq_string_tail_3');
  assert.equal(out[2], `s2 ::= "\\"" ${JSON_CHAR} ${JSON_CHAR} awq_string_tail_2`);
  assert.deepEqual(out.slice(3, 7), [
    'awq_string_tail_0 ::= "\\""',
    `awq_string_tail_1 ::= "\\"" | ${JSON_CHAR} awq_string_tail_0`,
    `awq_string_tail_2 ::= "\\"" | ${JSON_CHAR} awq_string_tail_1`,
    `awq_string_tail_3 ::= "\\"" | ${JSON_CHAR} awq_string_tail_2`,
  ]);
});

test("grammars without bounded strings are left as they are; minLength alone and very long bounds keep their form", () => {
  const plain = `root ::= "\\"" ${CHAR}* "\\""`;
  assert.equal(expandBoundedStrings(plain), plain);
  const atLeast = (c: string) => `root ::= "\\"" ${c}{2,} "\\""`;
  assert.equal(expandBoundedStrings(atLeast(CHAR)), atLeast(JSON_CHAR));
  const long = (c: string) => `root ::= "\\"" ${c}{0,${MAX_EXPANDED_LENGTH + 1}} "\\""`;
  assert.equal(expandBoundedStrings(long(CHAR)), long(JSON_CHAR));
  const otherClass = 'root ::= "\\"" [a-z]{0,4} "\\""';
  assert.equal(expandBoundedStrings(otherClass), otherClass);
});

let tokenizer: Tokenizer;
let engine: GrammarEngine;
before(async () => {
  tokenizer = await Tokenizer.load(modelDir);
  engine = await GrammarEngine.create(await vocabInfoFor(tokenizer, VOCAB));
});

/** XGrammar's own EBNF of a schema (numeric bounds already ours, strings as XGrammar writes them). */
async function xgrammarEbnf(schema: unknown): Promise<string> {
  const inst = await loadXgrammar();
  const bounded = rewriteNumericBounds(schema);
  const ebnf = await inst.api.Testings._jsonSchemaToEBNF(
    JSON.stringify(bounded.schema),
    false,
    -1,
    [", ", ": "],
    true,
  );
  // With JSON's rule for control characters, as every bounded string gets it (see the test below).
  return applyNumericRules(ebnf.replaceAll(`"\\"" ${CHAR}{`, `"\\"" ${JSON_CHAR}{`), bounded.rules);
}

test("same masks as XGrammar's form on every state of seeded random walks; bounds hold", async () => {
  const schema = {
    type: "object",
    properties: {
      title: { type: "string", maxLength: 12 },
      code: { type: "string", minLength: 2, maxLength: 5 },
      tags: { type: "array", items: { type: "string", maxLength: 4 }, maxItems: 3 },
      note: { type: "string" },
    },
    required: ["title", "code", "tags", "note"],
    additionalProperties: false,
  };
  const reference = await engine.compile({ type: "grammar", ebnf: await xgrammarEbnf(schema) });
  const expanded = await engine.compile({ type: "json_schema", schema });
  const words = engine.maskWords;
  const want = new Int32Array(words);
  const got = new Int32Array(words);
  let rng = 12345;
  const random = () => {
    rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
    return rng / 2 ** 32;
  };
  let states = 0;
  for (let walk = 0; walk < 6; walk++) {
    const a = await reference.newMatcher();
    const b = await expanded.newMatcher();
    const ids: number[] = [];
    try {
      for (let step = 0; step < 200 && !a.isTerminated(); step++) {
        await a.fillNextTokenBitmask(want);
        await b.fillNextTokenBitmask(got);
        const allowed: number[] = [];
        for (let t = 0; t < VOCAB; t++) {
          const bit = (want[t >> 5]! >>> (t & 31)) & 1;
          assert.equal((got[t >> 5]! >>> (t & 31)) & 1, bit, `walk ${walk}, step ${step}: token ${t}`);
          if (bit === 1) allowed.push(t);
        }
        states++;
        // Half the walks prefer long tokens, so that strings reach their bounds.
        const pick =
          walk % 2 === 0
            ? allowed[Math.floor(random() * allowed.length)]!
            : allowed.reduce((best, t) =>
                (tokenizer.idToToken(t)?.length ?? 0) > (tokenizer.idToToken(best)?.length ?? 0) &&
                random() < 0.7
                  ? t
                  : best,
              );
        assert.equal(a.acceptToken(pick), true);
        assert.equal(b.acceptToken(pick), true);
        ids.push(pick);
      }
      assert.equal(b.isTerminated(), a.isTerminated());
      if (a.isTerminated()) {
        const value = JSON.parse(tokenizer.decode(ids.slice(0, -1))) as Record<string, unknown>;
        assert.ok((value.title as string).length <= 12);
        assert.ok((value.code as string).length >= 2 && (value.code as string).length <= 5);
        for (const tag of value.tags as string[]) assert.ok(tag.length <= 4);
      }
    } finally {
      a.dispose();
      b.dispose();
    }
  }
  assert.ok(states > 100, `only ${states} states compared`);
});

test("a length-bounded string allows no raw control character (JSON.parse refuses them), as an unbounded one", async () => {
  const controls = Array.from({ length: 32 }, (_, b) =>
    tokenizer.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`),
  ).filter((id) => id !== undefined);
  assert.ok(controls.length >= 30, "the byte-fallback tokens of the control characters");
  const quote = tokenizer.tokenToId("<0x22>")!;
  const letter = tokenizer.tokenToId("a")!;
  const schemas = [
    { type: "string" },
    { type: "string", maxLength: 5 },
    { type: "string", minLength: 2, maxLength: 5 },
    { type: "string", maxLength: MAX_EXPANDED_LENGTH + 10 },
    { type: "string", minLength: 2 },
  ];
  const row = new Int32Array(engine.maskWords);
  for (const schema of schemas) {
    const m = await (await engine.compile({ type: "json_schema", schema })).newMatcher();
    try {
      assert.equal(m.acceptToken(quote), true);
      await m.fillNextTokenBitmask(row);
      const allows = (t: number) => ((row[t >> 5]! >>> (t & 31)) & 1) === 1;
      assert.ok(allows(letter), `${JSON.stringify(schema)}: a letter`);
      for (const t of controls) assert.ok(!allows(t), `${JSON.stringify(schema)}: ${tokenizer.idToToken(t)}`);
    } finally {
      m.dispose();
    }
  }
});
