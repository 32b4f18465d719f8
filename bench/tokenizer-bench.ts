/**
 * Tokenizer encode time (`node dist/bench/tokenizer-bench.js [--prompts N]`): the demo model's tokenizer (Llama-2's
 * with OpenChat's tokens) through @huggingface/tokenizers (`AWQ_TOKENIZER_FAST=0`) and through our SentencePiece-BPE
 * encoder (src/tokenizer/sentencepiece-bpe.ts), on what a server encodes: vLLM-style random prompts of 512 and 4096
 * tokens (`awq bench serve --dataset-name random`), English prose, and an OpenChat transcript holding
 * `<|end_of_turn|>` (../shared/data/demo-dev.txt, when present). Each text is encoded once, in order, by a tokenizer
 * loaded for the run (so the fast encoder's word cache warms as a server's would; both JIT-warmed on another text
 * first), median and max per text in ms.
 * Both paths' ids are compared. Prints one JSON object; docs/benchmarks.md records the numbers with the machine.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { randomDataset } from "../src/bench/random-dataset.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const modelDir = join(repoRoot, "models/tiny-chat-awq");
const { values } = parseArgs({ options: { prompts: { type: "string", default: "16" } } });
const numPrompts = Number(values.prompts);
if (!Number.isInteger(numPrompts) || numPrompts < 1) throw new Error(`--prompts must be a positive integer`);

async function loadTokenizer(fast: boolean): Promise<Tokenizer> {
  if (fast) delete process.env.AWQ_TOKENIZER_FAST;
  else process.env.AWQ_TOKENIZER_FAST = "0";
  const tokenizer = await Tokenizer.load(modelDir);
  delete process.env.AWQ_TOKENIZER_FAST;
  if (tokenizer.hasFastEncoder !== fast) throw new Error(`expected hasFastEncoder ${fast}`);
  return tokenizer;
}

const builder = await loadTokenizer(true);
const sets: { name: string; texts: string[] }[] = [];
for (const inputLen of [512, 4096]) {
  const prompts = await randomDataset(builder, {
    numPrompts,
    inputLen,
    outputLen: 1,
    rangeRatio: 0,
    seed: inputLen,
  });
  sets.push({ name: `random ${inputLen} tokens`, texts: prompts.map((p) => p.prompt) });
}
const prose =
  "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, ";
sets.push({
  name: "English prose, ~4 KB",
  texts: Array.from({ length: numPrompts }, (_, i) => `${i} ${prose.repeat(36)}`),
});
const transcript = join(repoRoot, "../shared/data/demo-dev.txt");
if (existsSync(transcript)) {
  const text = readFileSync(transcript, "utf8");
  const texts = Array.from({ length: numPrompts }, (_, i) => text.slice(i * 16384, i * 16384 + 16384));
  sets.push({ name: "OpenChat transcript with <|end_of_turn|>, 16 KB (demo-dev.txt)", texts });
}

function timeAll(tokenizer: Tokenizer, texts: string[]): { ms: number[]; ids: number[][] } {
  const ms: number[] = [];
  const ids: number[][] = [];
  for (const text of texts) {
    const t0 = performance.now();
    ids.push(tokenizer.encode(text));
    ms.push(performance.now() - t0);
  }
  return { ms, ids };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x: number) => Math.round(x * 1000) / 1000;
const library = await loadTokenizer(false);
const fast = await loadTokenizer(true);
// JIT warm-up on a text of its own (not timed).
for (const tokenizer of [library, fast])
  for (let i = 0; i < 3; i++) tokenizer.encode(`${i} warm-up ${prose}`);
const results = [];
for (const set of sets) {
  const lib = timeAll(library, set.texts);
  const ours = timeAll(fast, set.texts);
  const same = lib.ids.every(
    (ids, i) => ids.length === ours.ids[i].length && ids.every((id, j) => id === ours.ids[i][j]),
  );
  if (!same) throw new Error(`${set.name}: the fast encoder's ids differ from the library's`);
  results.push({
    text: set.name,
    texts: set.texts.length,
    tokensMedian: median(lib.ids.map((x) => x.length)),
    libraryMsMedian: round(median(lib.ms)),
    libraryMsMax: round(Math.max(...lib.ms)),
    fastMsMedian: round(median(ours.ms)),
    fastMsMax: round(Math.max(...ours.ms)),
    speedup: Math.round((median(lib.ms) / median(ours.ms)) * 10) / 10,
    sameIds: same,
  });
}
console.log(
  JSON.stringify(
    { bench: "tokenizer-encode", model: "models/tiny-chat-awq", node: process.version, results },
    null,
    2,
  ),
);
