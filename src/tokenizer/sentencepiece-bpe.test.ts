import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { randomDataset } from "../bench/random-dataset.js";
import { SeededRandom } from "../bench/seeded-random.js";
import { SentencePieceBpe } from "./sentencepiece-bpe.js";
import { Tokenizer } from "./tokenizer.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const modelDir = path.join(repoRoot, "models/tiny-chat-awq");

type JsonObject = Record<string, unknown>;

/** The library's ids (no special tokens), the reference. */
function libraryIds(hf: HfTokenizer, text: string): number[] {
  return hf.encode(text, { add_special_tokens: false }).ids;
}

/** Random text over `alphabet` (code points), up to maxLength of them. */
function fuzzText(rng: SeededRandom, alphabet: readonly string[], maxLength: number): string {
  const n = rng.intInclusive(1, maxLength);
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[rng.intInclusive(0, alphabet.length - 1)];
  return s;
}

const ENGLISH = `It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of
foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the season
of Darkness, it was the spring of hope, it was the winter of despair.`;
const CODE = `function add(a, b) {\n    return a + b;  // two  spaces\n\tif (x) {\n\t\treturn "\\u2581";\n    }\n}\n`;

describe("SentencePieceBpe on the demo model's tokenizer (Llama-2 + OpenChat tokens)", () => {
  let json: JsonObject;
  let config: JsonObject;
  let hf: HfTokenizer;
  let fast: SentencePieceBpe;
  before(async () => {
    json = JSON.parse(await readFile(path.join(modelDir, "tokenizer.json"), "utf8"));
    config = JSON.parse(await readFile(path.join(modelDir, "tokenizer_config.json"), "utf8"));
    hf = new HfTokenizer(json, config);
    const built = SentencePieceBpe.from(json, config);
    assert.ok(built, "the demo tokenizer is SentencePiece-style BPE");
    fast = built;
  });

  test("gives the library's ids on natural text, code, whitespace and unicode", () => {
    const texts = [
      ENGLISH,
      CODE,
      "a",
      " ",
      "   ",
      " leading and trailing ",
      "two  spaces   three",
      "\n\nnewlines\n",
      "\u2581 literal metaspace \u2581\u2581x",
      "日本語のテキストと中文",
      "emoji 😀🎉 and 👩‍👩‍👧 family",
      "accents: café naïve Ångström",
      "lone surrogate \ud800 here",
      "combining e\u0301 and \u200b zero width",
      "digits 1234567890 3.14159",
      "User: Hello Assistant: Hi",
      ENGLISH.repeat(5),
    ];
    for (const text of texts) assert.deepEqual(fast.encode(text), libraryIds(hf, text), JSON.stringify(text));
  });

  test("gives the library's ids on vLLM-style random prompts (decoded random token runs)", async () => {
    const tokenizer = await Tokenizer.load(modelDir);
    for (const seed of [0, 1, 2]) {
      const prompts = await randomDataset(tokenizer, {
        numPrompts: 6,
        inputLen: 300,
        outputLen: 1,
        rangeRatio: 0.9,
        seed,
      });
      for (const p of prompts) assert.deepEqual(fast.encode(p.prompt), libraryIds(hf, p.prompt));
    }
  });

  test("gives the library's ids on random character soup (fuzz)", () => {
    const rng = new SeededRandom(7);
    const alphabet = [..."abcdefghijklmnopqrstuvwxyz ABCXYZ  \u2581\n\t.,!?-'0123459éüß日本語中😀🎉\u0301"];
    alphabet.push("<s>", "</s>", "<|end_of_turn|>", "<|end_of_turn", "<unk>");
    for (let i = 0; i < 400; i++) {
      const text = fuzzText(rng, alphabet, 120);
      assert.deepEqual(fast.encode(text), libraryIds(hf, text), JSON.stringify(text));
    }
  });

  test("cuts added tokens out as the library does (chat prompts, the empty text)", () => {
    const texts = [
      "",
      "Hello<|end_of_turn|>",
      "<s> start",
      "<s><s></s>",
      "GPT4 User: Hi<|end_of_turn|>GPT4 Assistant: Hello there<|end_of_turn|>GPT4 User: and then?<|end_of_turn|>",
      "x<|end_of_turn|> y <|PAD|>  z",
      "<|end_of_turn|",
      "<unk> and <unk><unk>",
      `${ENGLISH}<|end_of_turn|>${CODE}<|end_of_turn|>`,
    ];
    for (const text of texts) assert.deepEqual(fast.encode(text), libraryIds(hf, text), JSON.stringify(text));
  });

  for (const prependScheme of ["first", "always", "never", undefined]) {
    test(`the newer conversion: no normalizer, a Metaspace pre-tokenizer (prepend_scheme ${prependScheme})`, () => {
      const metaspaceJson: JsonObject = {
        ...json,
        normalizer: null,
        pre_tokenizer: {
          type: "Metaspace",
          replacement: "\u2581",
          prepend_scheme: prependScheme,
          split: false,
        },
      };
      const lib = new HfTokenizer(metaspaceJson, config);
      const ours = SentencePieceBpe.from(metaspaceJson, config);
      assert.ok(ours);
      const rng = new SeededRandom(23);
      const alphabet = [..."abcdefgh ijk  XYZ\u2581\n.,日😀", "<s>", "</s>", "<|end_of_turn|>"];
      const texts = [ENGLISH, CODE, "<s>Hello", " leading", "x<|end_of_turn|> y", "\u2581already"];
      for (let i = 0; i < 300; i++) texts.push(fuzzText(rng, alphabet, 60));
      for (const text of texts)
        assert.deepEqual(ours.encode(text), libraryIds(lib, text), JSON.stringify(text));
    });
  }

  test("Tokenizer.encode gives the library's ids with and without added tokens", async () => {
    const tokenizer = await Tokenizer.load(modelDir);
    for (const text of [ENGLISH, "GPT4 User: Hi<|end_of_turn|>GPT4 Assistant:", "</s>x"]) {
      const want = libraryIds(hf, text);
      if (want[0] !== tokenizer.bosTokenId) want.unshift(tokenizer.bosTokenId as number);
      assert.deepEqual(tokenizer.encode(text), want);
    }
  });

  test("Tokenizer uses it for the demo model, and not with AWQ_TOKENIZER_FAST=0", async () => {
    assert.equal((await Tokenizer.load(modelDir)).hasFastEncoder, true);
    process.env.AWQ_TOKENIZER_FAST = "0";
    try {
      const slow = await Tokenizer.load(modelDir);
      assert.equal(slow.hasFastEncoder, false);
      assert.deepEqual(slow.encode(ENGLISH), (await Tokenizer.load(modelDir)).encode(ENGLISH));
    } finally {
      delete process.env.AWQ_TOKENIZER_FAST;
    }
  });

  test("is much faster than the library on a 512-token random prompt", async () => {
    const tokenizer = await Tokenizer.load(modelDir);
    const [p] = await randomDataset(tokenizer, {
      numPrompts: 1,
      inputLen: 512,
      outputLen: 1,
      rangeRatio: 0,
      seed: 3,
    });
    const time = (fn: () => void) => {
      let best = Number.POSITIVE_INFINITY;
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        fn();
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    };
    const freshFast = SentencePieceBpe.from(json, config) as SentencePieceBpe;
    const lib = time(() => libraryIds(hf, p.prompt));
    const ours = time(() => freshFast.encode(p.prompt));
    // Not a benchmark (docs/benchmarks.md has the numbers): only that the fast path is not slower than the library.
    assert.ok(ours < lib, `fast ${ours.toFixed(2)} ms against the library's ${lib.toFixed(2)} ms`);
  });
});

/** A small tokenizer.json of the Llama form with a chosen vocabulary and merges. */
function tinyTokenizer(opts: {
  merges: string[];
  byteFallback: boolean;
  fuseUnk: boolean;
  extraAdded?: JsonObject[];
}): JsonObject {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  const add = (t: string) => {
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  };
  for (const b of [0x41, 0x42, 0xc3, 0xa9]) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  for (const c of ["a", "b", "c", "\u2581"]) add(c);
  for (const m of opts.merges) add(m.replace(" ", ""));
  return {
    version: "1.0",
    added_tokens: [
      { id: 0, content: "<unk>", special: true, normalized: false },
      { id: 1, content: "<s>", special: true, normalized: false },
      { id: 2, content: "</s>", special: true, normalized: false },
      ...(opts.extraAdded ?? []),
    ],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "\u2581" },
        { type: "Replace", pattern: { String: " " }, content: "\u2581" },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: opts.fuseUnk,
      byte_fallback: opts.byteFallback,
      vocab,
      merges: opts.merges,
    },
  };
}

describe("SentencePieceBpe on small tokenizers", () => {
  const alphabet = [..."abc  \u2581xAé😀", "</s>", "<s>"];
  for (const byteFallback of [true, false]) {
    for (const fuseUnk of [true, false]) {
      for (const joining of [false, true]) {
        test(`byte_fallback ${byteFallback}, fuse_unk ${fuseUnk}, merges ${joining ? "across" : "within"} words`, () => {
          const merges = ["a b", "ab c", "\u2581 a", "\u2581 \u2581", "b b", "c a", "\u2581a b", "a a"];
          if (joining) merges.push("c \u2581", "c\u2581 a");
          const json = tinyTokenizer({ merges, byteFallback, fuseUnk });
          const hf = new HfTokenizer(json, {});
          const fast = SentencePieceBpe.from(json, {});
          assert.ok(fast);
          const rng = new SeededRandom(byteFallback ? 11 : 13);
          for (let i = 0; i < 300; i++) {
            const text = fuzzText(rng, alphabet, 40);
            assert.deepEqual(fast.encode(text), libraryIds(hf, text), JSON.stringify(text));
          }
        });
      }
    }
  }

  test("added tokens with lstrip / rstrip, normalized added tokens, overlapping contents", () => {
    const extraAdded = [
      { id: 40, content: "<L>", special: true, normalized: false, lstrip: true },
      { id: 41, content: "<R>", special: true, normalized: false, rstrip: true },
      { id: 42, content: "<LR>", special: false, normalized: false, lstrip: true, rstrip: true },
      { id: 43, content: "ab c", special: false, normalized: true },
      { id: 44, content: "ca", special: false },
      { id: 45, content: "<R", special: true, normalized: false },
    ];
    const json = tinyTokenizer({
      merges: ["a b", "ab c", "\u2581 a", "b b"],
      byteFallback: true,
      fuseUnk: true,
      extraAdded,
    });
    const hf = new HfTokenizer(json, {});
    const fast = SentencePieceBpe.from(json, {}) as SentencePieceBpe;
    const alphabet = [..."abc  \u2581\tx", "<L>", "<R>", "<LR>", "<R", "ab c", "</s>"];
    const rng = new SeededRandom(17);
    for (let i = 0; i < 500; i++) {
      const text = fuzzText(rng, alphabet, 30);
      assert.deepEqual(fast.encode(text), libraryIds(hf, text), JSON.stringify(text));
    }
  });

  test("duplicate merges: the later rank wins, as in the library", () => {
    const json = tinyTokenizer({ merges: ["b c", "a b", "c a", "b c"], byteFallback: true, fuseUnk: true });
    const hf = new HfTokenizer(json, {});
    const fast = SentencePieceBpe.from(json, {}) as SentencePieceBpe;
    for (const text of ["abc", "bca", "abca", "cabcab"])
      assert.deepEqual(fast.encode(text), libraryIds(hf, text));
  });

  test("refuses tokenizers of another form", () => {
    const base = () => tinyTokenizer({ merges: ["a b"], byteFallback: true, fuseUnk: true });
    const byteLevel = { ...base(), pre_tokenizer: { type: "ByteLevel", add_prefix_space: false } };
    assert.equal(SentencePieceBpe.from(byteLevel, {}), null);
    const metaspaceInSequence = {
      ...base(),
      pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Metaspace" }] },
    };
    assert.equal(SentencePieceBpe.from(metaspaceInSequence, {}), null);
    const nfkc = { ...base(), normalizer: { type: "NFKC" } };
    assert.equal(SentencePieceBpe.from(nfkc, {}), null);
    const wordPiece = { ...base(), model: { type: "WordPiece", vocab: {} } };
    assert.equal(SentencePieceBpe.from(wordPiece, {}), null);
    assert.equal(SentencePieceBpe.from(base(), { remove_space: true }), null);
    const dropout = base();
    (dropout.model as JsonObject).dropout = 0.1;
    assert.equal(SentencePieceBpe.from(dropout, {}), null);
  });
});
