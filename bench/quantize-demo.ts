/**
 * The quantizer's quality run: quantizes ../shared/models/tiny-chat with ../shared/data/demo-calib.txt by RTN
 * and by AWQ (same code path, `awq quantize`'s library call), then measures perplexity of each (and of the fp16
 * model) on ../shared/data/demo-dev.txt with the reference.json protocol (ctx 512, every window), on the CPU
 * backend through src/eval/perplexity.ts, the same path as `awq ppl`.
 *
 *   node dist/bench/quantize-demo.js [--out DIR] [--samples N] [--seqlen N] [--max-windows N]
 *                                    [--methods rtn,awq,fp16] [--search-blocks N] [--clip-qk] [--no-gptq] [--gptq-qk] [--gptq-clip] [--search-rtn]
 *                                    [--propagate fp16] [--backend cpu|cuda|auto]
 *
 * --backend picks where the quantizer's search runs (default cpu); perplexity is always measured on the CPU.
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { CpuBackend } from "../src/backend/cpu/cpu-backend.js";
import { computePerplexity } from "../src/eval/perplexity.js";
import { openModel } from "../src/model/load.js";
import type { QuantBackendChoice } from "../src/quant/create-quant-math.js";
import { quantizeModel } from "../src/quant/quantize.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";

const repoRoot = resolve(import.meta.dirname, "../..");
const shared = resolve(repoRoot, "../shared");

const { values } = parseArgs({
  options: {
    out: { type: "string", default: "/tmp/awq-quantize-demo" },
    samples: { type: "string", default: "128" },
    seqlen: { type: "string", default: "512" },
    "max-windows": { type: "string" },
    methods: { type: "string", default: "rtn,awq" },
    "search-blocks": { type: "string" },
    "clip-qk": { type: "boolean", default: false },
    "no-gptq": { type: "boolean", default: false },
    "gptq-qk": { type: "boolean", default: false },
    "gptq-clip": { type: "boolean", default: false },
    "search-rtn": { type: "boolean", default: false },
    propagate: { type: "string", default: "quantized" },
    backend: { type: "string", default: "cpu" },
  },
});

async function perplexityOf(dir: string, ids: number[], maxWindows?: number): Promise<number> {
  const model = await openModel(dir);
  const backend = new CpuBackend();
  try {
    const kvLayout = await backend.load(model, {
      maxModelLen: 512,
      maxNumSeqs: 1,
      maxNumBatchedTokens: 512,
      blockSize: 16,
    });
    const result = await computePerplexity(backend, ids, { ctx: 512, kvLayout, maxWindows });
    console.log(
      `  ppl ${result.perplexity.toFixed(4)} over ${result.windows} windows (${result.seconds.toFixed(1)} s)`,
    );
    return result.perplexity;
  } finally {
    await backend.dispose();
    await model.checkpoint.close();
  }
}

const fp16Dir = join(shared, "models/tiny-chat");
const tokenizer = await Tokenizer.load(fp16Dir);
const devIds = tokenizer.encode(await readFile(join(shared, "data/demo-dev.txt"), "utf8"));
const maxWindows = values["max-windows"] === undefined ? undefined : Number(values["max-windows"]);
const results: Record<string, number> = {};
for (const method of (values.methods ?? "").split(",")) {
  if (method === "fp16") {
    console.log("fp16:");
    results.fp16 = await perplexityOf(fp16Dir, devIds, maxWindows);
    continue;
  }
  if (method !== "rtn" && method !== "awq") throw new Error(`--methods: unknown method ${method}`);
  const outDir = join(values.out ?? "", method);
  const summary = await quantizeModel({
    modelDir: fp16Dir,
    outDir,
    calibFile: join(shared, "data/demo-calib.txt"),
    samples: Number(values.samples),
    seqlen: Number(values.seqlen),
    method,
    backend: values.backend as QuantBackendChoice,
    search: {
      ...(values["search-blocks"] === undefined ? {} : { searchBlocks: Number(values["search-blocks"]) }),
      clipQk: values["clip-qk"] ?? false,
      gptq: !(values["no-gptq"] ?? false),
      gptqQk: values["gptq-qk"] ?? false,
      gptqClip: values["gptq-clip"] ?? false,
      searchWithGptq: !(values["search-rtn"] ?? false),
      propagate: values.propagate === "fp16" ? "fp16" : "quantized",
    },
    onLog: (line) => console.log(`  ${line}`),
  });
  console.log(
    `${method}: quantized in ${summary.seconds.toFixed(1)} s on ${summary.backend} (${summary.calibrationBlocks} blocks, ` +
      `${summary.calibrationTokens} tokens) -> ${outDir}`,
  );
  results[method] = await perplexityOf(outDir, devIds, maxWindows);
}
console.log(JSON.stringify(results));
if (results.rtn !== undefined && results.awq !== undefined) {
  // reference.json's fp16 (HF transformers) holds for all 201 windows only; on fewer, measure fp16 too.
  const fp16 = results.fp16 ?? (maxWindows === undefined ? 26.239848136276983 : Number.NaN);
  const closed = ((results.rtn - results.awq) / (results.rtn - fp16)) * 100;
  console.log(`AWQ closes ${closed.toFixed(1)}% of the RTN-to-fp16 gap (fp16 ${fp16.toFixed(4)})`);
}
