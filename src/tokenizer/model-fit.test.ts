import assert from "node:assert/strict";
import { resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadModelConfig } from "../model/config.js";
import { assertTokenizerFitsModel, tokenizerMismatches } from "./model-fit.js";
import { Tokenizer } from "./tokenizer.js";

const demoDir = resolve(fileURLToPath(import.meta.url), "../../../../models/tiny-chat-awq");

test("the demo tokenizer fits the demo model; a smaller vocabulary or a missing chat token is named", async () => {
  const tokenizer = await Tokenizer.load(demoDir);
  const config = await loadModelConfig(demoDir);
  assert.deepEqual(tokenizerMismatches(tokenizer, config, "openchat"), []);
  assertTokenizerFitsModel(tokenizer, config, "openchat");

  const small = { ...config, vocabSize: 32000 };
  const problems = tokenizerMismatches(tokenizer, small, "openchat");
  assert.match(problems[0]!, /tokenizer\.json has 32002 token ids but the model's vocab_size is 32000/);
  assert.ok(problems.some((p) => /stop token id 32000 is outside the model's vocab_size 32000/.test(p)));
  assert.throws(
    () => assertTokenizerFitsModel(tokenizer, small, "openchat"),
    /^Error: the tokenizer does not fit the model: /,
  );

  // A tokenizer without <|end_of_turn|> cannot speak OpenChat.
  const noTurnEnd = Object.create(tokenizer, { tokenToId: { value: () => undefined } }) as Tokenizer;
  assert.deepEqual(tokenizerMismatches(noTurnEnd, config, "openchat-gpt4"), [
    `the openchat-gpt4 chat format needs the <|end_of_turn|> token, which ${demoDir}/tokenizer.json lacks`,
  ]);
  assert.deepEqual(tokenizerMismatches(noTurnEnd, config, "model"), []);
});
