import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { IncrementalDetokenizer } from "./detokenizer.js";
import { Tokenizer } from "./tokenizer.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const modelDir = path.join(repoRoot, "models/tiny-chat-awq");
const devFile = path.resolve(repoRoot, "../shared/data/demo-dev.txt");

/** Text with characters the Llama vocabulary only has as byte-fallback tokens (emoji, rare CJK, Hangul). */
const MIXED_TEXT =
  "User: Say hello in many ways.<|end_of_turn|>Assistant: Hello 👋🏽! 你好，龘靐齉。 안녕하세요 — café, naïve, " +
  "Grüße 🎉🎉\n\n\tIndented 😀😀😀 line.\n  Two spaces. Ελληνικά, русский, עברית, 🤖<|end_of_turn|>";

function isByteToken(tokenizer: Tokenizer, id: number): boolean {
  return /^<0x[0-9A-F]{2}>$/.test(tokenizer.idToToken(id) ?? "");
}

/** Streams `output` after `prompt` and returns the deltas (flush included). */
function stream(
  tokenizer: Tokenizer,
  prompt: number[],
  output: number[],
  skipSpecialTokens = false,
): string[] {
  const detokenizer = new IncrementalDetokenizer(tokenizer, { promptTokenIds: prompt, skipSpecialTokens });
  const deltas = output.map((id) => detokenizer.push(id));
  deltas.push(detokenizer.flush());
  assert.equal(detokenizer.text, deltas.join(""));
  return deltas;
}

/** The text the output adds to the prompt when both are decoded together. */
function decodeInContext(
  tokenizer: Tokenizer,
  prompt: number[],
  output: number[],
  skipSpecialTokens = false,
) {
  const opts = { skipSpecialTokens };
  const promptText = tokenizer.decode(prompt, opts);
  const fullText = tokenizer.decode([...prompt, ...output], opts);
  assert.ok(fullText.startsWith(promptText));
  return fullText.slice(promptText.length);
}

describe("IncrementalDetokenizer", () => {
  let tokenizer: Tokenizer;
  before(async () => {
    tokenizer = await Tokenizer.load(modelDir);
  });

  test("gives the first token after 'Assistant:' its leading space", () => {
    const prompt = tokenizer.encode("User: Hi<|end_of_turn|>Assistant:");
    const output = tokenizer.encode("I am here.", { addBos: false });
    assert.equal(tokenizer.idToToken(output[0]!), "▁I");
    const deltas = stream(tokenizer, prompt, output);
    assert.equal(deltas[0], " I");
    assert.equal(deltas.join(""), " I am here.");
  });

  test("without a prompt, streams exactly what decode gives", () => {
    const output = tokenizer.encode("I am here.", { addBos: false });
    assert.equal(stream(tokenizer, [], output).join(""), tokenizer.decode(output));
  });

  test("never emits half a UTF-8 character when emoji and CJK come as byte tokens", () => {
    const prompt = tokenizer.encode("Assistant:");
    const output = tokenizer.encode("👋🏽 龘靐齉 안녕 🤖!", { addBos: false });
    assert.ok(
      output.filter((id) => isByteToken(tokenizer, id)).length >= 20,
      "the text must use byte tokens",
    );
    const deltas = stream(tokenizer, prompt, output);
    for (const delta of deltas) {
      assert.ok(!delta.includes("\uFFFD"), `delta ${JSON.stringify(delta)} holds a replacement character`);
      assert.equal(Buffer.from(delta, "utf8").toString("utf8"), delta, "delta is not well-formed UTF-16");
    }
    assert.equal(deltas.join(""), " 👋🏽 龘靐齉 안녕 🤖!");
    // The 4-byte emoji appears whole on its 4th byte token, nothing before.
    const emojiBytes = tokenizer.encode("🤖", { addBos: false }).filter((id) => isByteToken(tokenizer, id));
    assert.equal(emojiBytes.length, 4);
  });

  test("flush emits an unfinished character as U+FFFD", () => {
    const bytes = tokenizer.encode("🤖", { addBos: false }).filter((id) => isByteToken(tokenizer, id));
    const detokenizer = new IncrementalDetokenizer(tokenizer, { promptTokenIds: tokenizer.encode("Hi") });
    assert.equal(detokenizer.push(bytes[0]!), "");
    assert.equal(detokenizer.push(bytes[1]!), "");
    assert.equal(detokenizer.flush(), "\uFFFD");
    assert.equal(detokenizer.flush(), "");
  });

  test("emits invalid bytes instead of holding them forever", () => {
    const byte = (value: number) => tokenizer.tokenToId(`<0x${value.toString(16).toUpperCase()}>`)!;
    const detokenizer = new IncrementalDetokenizer(tokenizer, { promptTokenIds: tokenizer.encode("Hi") });
    // Lone continuation bytes never become a character.
    const deltas = [0x80, 0x81, 0x82, 0x83, 0x84].map((value) => detokenizer.push(byte(value)));
    assert.deepEqual(deltas, ["", "", "", "\uFFFD".repeat(4), ""]);
    assert.equal(detokenizer.push(tokenizer.tokenToId("▁ok")!), "\uFFFD ok");
  });

  test("skips special tokens when asked, keeping the space of the word after them", () => {
    const prompt = tokenizer.encode("User: Hi<|end_of_turn|>Assistant:");
    const output = tokenizer.encode("Hello<|end_of_turn|>User: more<|end_of_turn|>", { addBos: false });
    assert.equal(stream(tokenizer, prompt, output, true).join(""), " Hello User: more");
    assert.equal(
      stream(tokenizer, prompt, output, false).join(""),
      " Hello<|end_of_turn|> User: more<|end_of_turn|>",
    );
    // A prompt of nothing but special tokens still gives the first word's text as decode does.
    assert.equal(
      stream(tokenizer, [1, 32000], output, true).join(""),
      decodeInContext(tokenizer, [1, 32000], output, true),
    );
  });

  test("the deltas of random spans of real text add up to the decode in context", async () => {
    let text = MIXED_TEXT.repeat(3);
    if (existsSync(devFile)) text += (await readFile(devFile, "utf8")).slice(0, 60_000);
    const ids = tokenizer.encode(text);
    let seed = 12345;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    // Cut points inside a byte-token run would split a character in the prompt itself; avoid those.
    const cleanCut = (i: number) => !isByteToken(tokenizer, ids[i]!) && !isByteToken(tokenizer, ids[i - 1]!);
    let checked = 0;
    while (checked < 200) {
      const promptEnd = 1 + random(ids.length - 100);
      if (!cleanCut(promptEnd)) continue;
      const promptStart = random(2) === 0 ? 0 : Math.max(0, promptEnd - 1 - random(40));
      const output = ids.slice(promptEnd, promptEnd + 1 + random(80));
      const prompt = ids.slice(promptStart, promptEnd);
      const skip = random(2) === 0;
      const deltas = stream(tokenizer, prompt, output, skip);
      assert.equal(deltas.join(""), decodeInContext(tokenizer, prompt, output, skip), `span at ${promptEnd}`);
      checked++;
    }
  });
});
