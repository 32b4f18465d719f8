import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "./tokenizer.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const modelDir = path.join(repoRoot, "models/tiny-chat-awq");
const fixtures = path.join(repoRoot, "test/fixtures/tokenizer");
const shared = path.resolve(repoRoot, "../shared");

// Published by OpenChat's authors for their prompt format.
const SYSTEM_PROMPT = "You are OpenOrcaChat.<|end_of_turn|>User: Hello<|end_of_turn|>Assistant:";
const SYSTEM_PROMPT_IDS = [
  1, 887, 526, 4673, 2816, 1113, 1451, 271, 29889, 32000, 4911, 29901, 15043, 32000, 4007, 22137, 29901,
];
const MULTI_TURN =
  "You are OpenOrcaChat.<|end_of_turn|>User: Hello<|end_of_turn|>Assistant: Hi<|end_of_turn|>User: How are you today?<|end_of_turn|>Assistant:";
const MULTI_TURN_IDS = [
  1, 887, 526, 4673, 2816, 1113, 1451, 271, 29889, 32000, 4911, 29901, 15043, 32000, 4007, 22137, 29901, 6324,
  32000, 4911, 29901, 1128, 526, 366, 9826, 29973, 32000, 4007, 22137, 29901,
];

/** A scratch model folder holding the demo model's tokenizer files, for variations of the side files. */
async function scratchCopy(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "awq-tokenizer-"));
  for (const file of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
    await copyFile(path.join(modelDir, file), path.join(dir, file));
  }
  return dir;
}

describe("Tokenizer on the demo model", () => {
  let tokenizer: Tokenizer;
  before(async () => {
    tokenizer = await Tokenizer.load(modelDir);
  });

  test("reproduces the ids OpenChat's authors published", () => {
    assert.deepEqual(tokenizer.encode(SYSTEM_PROMPT), SYSTEM_PROMPT_IDS);
    assert.deepEqual(tokenizer.encode(MULTI_TURN), MULTI_TURN_IDS);
  });

  test("reproduces the prompt ids of HF transformers in reference.json", async () => {
    const { prompts } = JSON.parse(await readFile(path.join(fixtures, "reference-prompts.json"), "utf8")) as {
      prompts: { prompt: string; prompt_ids: number[] }[];
    };
    assert.equal(prompts.length, 4);
    for (const { prompt, prompt_ids } of prompts)
      assert.deepEqual(tokenizer.encode(prompt), prompt_ids, prompt);
  });

  test("puts exactly one BOS first, and none when asked", () => {
    assert.deepEqual(tokenizer.encode("Hello"), [1, 15043]);
    assert.deepEqual(tokenizer.encode("Hello", { addBos: false }), [15043]);
    assert.deepEqual(tokenizer.encode("<s>Hello"), tokenizer.encode("Hello"));
  });

  test("knows its special tokens and stop tokens", () => {
    assert.equal(tokenizer.vocabSize, 32002);
    assert.equal(tokenizer.bosTokenId, 1);
    assert.equal(tokenizer.eosTokenId, 32000);
    assert.equal(tokenizer.padTokenId, 32001);
    assert.deepEqual(tokenizer.stopTokenIds, [32000]);
    assert.equal(tokenizer.chatTemplate, null);
    assert.equal(tokenizer.tokenToId("<|end_of_turn|>"), 32000);
    assert.equal(tokenizer.idToToken(306), "▁I");
    assert.equal(tokenizer.idToToken(99999), undefined);
    assert.equal(tokenizer.isSpecial(32000), true);
    assert.equal(tokenizer.isSpecial(1), true);
    assert.equal(tokenizer.isSpecial(306), false);
  });

  test("decodes back to the same text", () => {
    for (const text of [
      "Hello world",
      " leading space and  two spaces",
      "Line one\nLine two\n\n\ttabbed",
      "Emoji 😀 and CJK 中文字 and accents: café naïve",
      "And the LORD said unto Moses, Behold.",
    ]) {
      assert.equal(tokenizer.decode(tokenizer.encode(text)), `<s> ${text}`);
      assert.equal(tokenizer.decode(tokenizer.encode(text), { skipSpecialTokens: true }), text);
      assert.equal(tokenizer.decode(tokenizer.encode(text, { addBos: false })), text);
    }
    assert.equal(
      tokenizer.decode(MULTI_TURN_IDS, { skipSpecialTokens: true }),
      "You are OpenOrcaChat. User: Hello Assistant: Hi User: How are you today? Assistant:",
    );
    // Legacy Llama tokenization puts "▁" before the word after a special token; decode keeps that space.
    assert.equal(tokenizer.decode(MULTI_TURN_IDS.slice(1)), MULTI_TURN.replaceAll("|>", "|> "));
  });

  test("refuses ids outside the vocabulary", () => {
    assert.throws(
      () => tokenizer.decode([1, 32002]),
      /token id 32002 is outside the vocabulary \(0\.\.32001\)/,
    );
    assert.throws(() => tokenizer.decode([-1]), /token id -1/);
  });

  test("tokenizes the whole dev text quickly and as the reference protocol counted", async (t) => {
    const devFile = path.join(shared, "data/demo-dev.txt");
    if (!existsSync(devFile)) return t.skip("needs ../shared/data/demo-dev.txt");
    const text = await readFile(devFile, "utf8");
    const start = performance.now();
    const ids = tokenizer.encode(text);
    const seconds = (performance.now() - start) / 1000;
    // reference.json: dev_tokens 103129, cut into 201 windows of 512.
    assert.equal(ids.length, 103129);
    assert.equal(Math.floor(ids.length / 512), 201);
    assert.equal(ids.filter((id) => id === 1).length, 1);
    assert.ok(seconds < 5, `took ${seconds.toFixed(2)} s`);
  });
});

describe("Tokenizer.load", () => {
  const scratch: string[] = [];
  after(async () => {
    for (const dir of scratch) await rm(dir, { recursive: true, force: true });
  });

  test("names the folder and the missing file when tokenizer.json is absent", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "awq-tokenizer-"));
    scratch.push(dir);
    await assert.rejects(Tokenizer.load(dir), (err: Error) => {
      assert.ok(err.message.includes(dir) && err.message.includes("tokenizer.json"), err.message);
      return true;
    });
    await assert.rejects(Tokenizer.load(path.join(dir, "nope")), /does not exist/);
  });

  test("collects stop tokens from every config file", async () => {
    const dir = await scratchCopy();
    scratch.push(dir);
    await writeFile(path.join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [2, 13] }));
    await writeFile(path.join(dir, "config.json"), JSON.stringify({ eos_token_id: 2 }));
    const tokenizer = await Tokenizer.load(dir);
    assert.deepEqual(tokenizer.stopTokenIds, [2, 13, 32000]);
  });

  test("keeps tokens of added_tokens.json whole and picks the default of named chat templates", async () => {
    const dir = await scratchCopy();
    scratch.push(dir);
    await writeFile(path.join(dir, "added_tokens.json"), JSON.stringify({ "<|tool|>": 32002 }));
    const config = JSON.parse(await readFile(path.join(dir, "tokenizer_config.json"), "utf8"));
    config.chat_template = [
      { name: "tool_use", template: "tools" },
      { name: "default", template: "{{ messages[0].content }}" },
    ];
    await writeFile(path.join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const tokenizer = await Tokenizer.load(dir);
    assert.equal(tokenizer.vocabSize, 32003);
    assert.deepEqual(tokenizer.encode("Hi<|tool|>", { addBos: false }), [6324, 32002]);
    assert.equal(tokenizer.chatTemplate, "{{ messages[0].content }}");
  });
});
