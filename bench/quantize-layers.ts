/**
 * Quantizer speed at Llama-2-13B's layer shape: writes a synthetic fp16 Llama with 13B-shaped layers (hidden
 * 5120, intermediate 13824, 40 heads; random weights ~ N(0, 0.02), norms ~ 1; the demo model's tokenizer) to a
 * temporary folder, quantizes it by AWQ through quantizeModel on the chosen backend with 128 calibration blocks
 * of 512 tokens (the demo calibration text tokenized and cycled), and prints each layer's seconds, their mean
 * and the projected time for 40 layers, then one JSON line.
 *
 *   node dist/bench/quantize-layers.js [--backend cuda|cpu|auto] [--layers 3] [--blocks 128] [--seqlen 512]
 *                                      [--calib FILE] [--hidden N --intermediate N --heads N --kv-heads N]
 *                                      [--group-size 128] [--no-gptq] [--seed 1] [--keep]
 *
 * A small shape runs (slowly) on the CPU: --backend cpu --layers 1 --hidden 512 --intermediate 1024 --heads 4
 * --blocks 8 --seqlen 128.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { QuantBackendChoice } from "../src/quant/create-quant-math.js";
import { quantizeModel } from "../src/quant/quantize.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";
import { demoAwqDir, repoRoot, VOCAB, writeSyntheticModel } from "../test/fixtures/quant/synthetic-model.js";

const PROJECTED_LAYERS = 40; // Llama-2-13B

const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "cuda" },
    layers: { type: "string", default: "3" },
    blocks: { type: "string", default: "128" },
    seqlen: { type: "string", default: "512" },
    calib: { type: "string" },
    hidden: { type: "string", default: "5120" },
    intermediate: { type: "string", default: "13824" },
    heads: { type: "string", default: "40" },
    "kv-heads": { type: "string" },
    "group-size": { type: "string", default: "128" },
    "no-gptq": { type: "boolean", default: false },
    seed: { type: "string", default: "1" },
    keep: { type: "boolean", default: false },
  },
});

function positiveInt(name: string): number {
  const raw = values[name as keyof typeof values];
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
}

const backend = values.backend as QuantBackendChoice;
if (!["cpu", "cuda", "auto"].includes(backend))
  throw new Error(`--backend must be cpu, cuda or auto, got "${backend}"`);
const layers = positiveInt("layers");
const numBlocks = positiveInt("blocks");
const seqlen = positiveInt("seqlen");
const hidden = positiveInt("hidden");
const intermediate = positiveInt("intermediate");
const heads = positiveInt("heads");
const kvHeads = values["kv-heads"] === undefined ? heads : positiveInt("kv-heads");
const groupSize = positiveInt("group-size");
const seed = positiveInt("seed");
if (hidden % heads !== 0) throw new Error(`--hidden ${hidden} is not divisible by --heads ${heads}`);
if (heads % kvHeads !== 0) throw new Error(`--heads ${heads} is not divisible by --kv-heads ${kvHeads}`);
const headDim = hidden / heads;

/** The demo calibration text when ../shared is there, else the repo's README. */
function calibFile(): string {
  if (values.calib !== undefined) return values.calib;
  const demo = resolve(repoRoot, "../shared/data/demo-calib.txt");
  return existsSync(demo) ? demo : join(repoRoot, "README.md");
}

/** `numBlocks` blocks of `seqlen` ids, cycling through the text's tokens. */
async function calibrationBlocks(file: string): Promise<Int32Array[]> {
  const tokenizer = await Tokenizer.load(demoAwqDir);
  const ids = tokenizer.encode(await readFile(file, "utf8"));
  if (ids.length === 0) throw new Error(`--calib ${file} has no tokens`);
  return Array.from({ length: numBlocks }, (_, b) =>
    Int32Array.from({ length: seqlen }, (_, t) => ids[(b * seqlen + t) % ids.length]),
  );
}

const work = await mkdtemp(join(tmpdir(), "awq-quantize-layers-"));
try {
  const modelDir = join(work, "fp16");
  let t0 = performance.now();
  // Untied lm_head, as Llama-2-13B (the quantizer copies it through as fp16).
  const shape = { hidden, intermediate, layers, heads, kvHeads, headDim };
  await writeSyntheticModel(modelDir, shape, { values: "gaussian", untiedLmHead: true, seed });
  const writeSeconds = (performance.now() - t0) / 1000;
  console.log(
    `model: ${layers} layers, hidden ${hidden}, intermediate ${intermediate}, ${heads} heads (${kvHeads} kv), ` +
      `vocab ${VOCAB} -> ${modelDir} (${writeSeconds.toFixed(1)} s)`,
  );
  const file = calibFile();
  const blocks = await calibrationBlocks(file);
  console.log(`calibration: ${numBlocks} blocks of ${seqlen} tokens from ${file}`);
  t0 = performance.now();
  const summary = await quantizeModel({
    modelDir,
    outDir: join(work, "awq"),
    calibrationBlocks: blocks,
    seqlen,
    groupSize,
    backend,
    search: { gptq: !values["no-gptq"] },
    onLog: (line) => {
      if (line.startsWith("backend") || line.startsWith("CUDA")) console.log(line);
    },
    onLayerDone: (layer, seconds) => console.log(`layer ${layer}: ${seconds.toFixed(2)} s`),
  });
  const quantizeSeconds = (performance.now() - t0) / 1000;
  const perLayer = summary.layerSeconds;
  const mean = perLayer.reduce((a, b) => a + b, 0) / perLayer.length;
  // Layer 0 also uploads the calibration embeddings and warms up: the later layers are the steady state.
  const steady = perLayer.length > 1 ? perLayer.slice(1) : perLayer;
  const steadyMean = steady.reduce((a, b) => a + b, 0) / steady.length;
  console.log(
    `backend ${summary.backend}: mean ${mean.toFixed(2)} s per layer (steady ${steadyMean.toFixed(2)} s), ` +
      `projected ${((steadyMean * PROJECTED_LAYERS) / 60).toFixed(1)} min for ${PROJECTED_LAYERS} layers; ` +
      `quantizeModel ${quantizeSeconds.toFixed(1)} s in all`,
  );
  const memory = summary.deviceMemory;
  if (memory !== undefined) {
    console.log(
      `peak GPU memory ${(memory.peakBytes / 2 ** 30).toFixed(1)} GiB of ${(memory.totalBytes / 2 ** 30).toFixed(1)} GiB ` +
        "(independent of the layer count: one layer at a time)",
    );
  }
  console.log(
    JSON.stringify({
      backend: summary.backend,
      hidden,
      intermediate,
      heads,
      kvHeads,
      layers,
      blocks: numBlocks,
      seqlen,
      groupSize,
      gptq: !values["no-gptq"],
      layerSeconds: perLayer.map((s) => Number(s.toFixed(3))),
      meanSeconds: Number(mean.toFixed(3)),
      steadyMeanSeconds: Number(steadyMean.toFixed(3)),
      projectedSeconds40: Number((steadyMean * PROJECTED_LAYERS).toFixed(1)),
      quantizeSeconds: Number(quantizeSeconds.toFixed(1)),
      writeModelSeconds: Number(writeSeconds.toFixed(1)),
      peakGpuMemoryGiB: memory === undefined ? null : Number((memory.peakBytes / 2 ** 30).toFixed(2)),
    }),
  );
} catch (err) {
  // A clear line (e.g. no GPU for --backend cuda) rather than a stack.
  console.error(`quantize-layers: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  if (values.keep) console.log(`kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}
