/**
 * CPU backend benchmark (`npm run bench` = `node dist/bench/cpu-bench.js [--ppl-windows N] [--decode-tokens N]`):
 *  1. single-stream greedy decode tokens/s on the AWQ demo model (models/tiny-chat-awq), prefill excluded;
 *  2. the full perplexity run over ../shared/data/demo-dev.txt (201 windows of 512), its time and result.
 * Prints one JSON object; docs/benchmarks.md records the numbers by hand with the machine's load.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CpuBackend } from "../src/backend/cpu/cpu-backend.js";
import { computePerplexity } from "../src/eval/perplexity.js";
import { openModel } from "../src/model/load.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";
import { StepBuilder } from "../test/conformance/step-builder.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values } = parseArgs({
  options: {
    "ppl-windows": { type: "string" },
    "decode-tokens": { type: "string", default: "256" },
    "skip-ppl": { type: "boolean", default: false },
  },
});

/** CPU time of this process (all threads) since `start`: what the run costs, whatever else loads the machine. */
function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

async function loadCpu(dir: string, maxModelLen: number) {
  const model = await openModel(dir);
  const backend = new CpuBackend();
  const layout = await backend.load(model, {
    maxModelLen,
    maxNumSeqs: 1,
    maxNumBatchedTokens: 2048,
    blockSize: 16,
  });
  await model.checkpoint.close();
  return { backend, layout };
}

async function benchDecode(dir: string, decodeTokens: number) {
  const { backend, layout } = await loadCpu(dir, 1024);
  const builder = new StepBuilder(layout.blockSize, layout.numBlocks);
  const prompt = [1, 512, 278, 6763, 4177, 2825]; // "In the beginning God created"
  const seq = builder.addSequence(prompt);
  const first = await backend.step(builder.build([{ seq }]));
  seq.tokens.push(first.tokenIds[0]);
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  for (let i = 1; i < decodeTokens; i++) {
    // ignore eos: the benchmark measures steady decoding, whatever the text says
    const r = await backend.step(builder.build([{ seq }]));
    seq.tokens.push(r.tokenIds[0]);
  }
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = cpuSecondsSince(cpuStart);
  await backend.dispose();
  return {
    decodeTokens: decodeTokens - 1,
    seconds,
    tokensPerSecond: (decodeTokens - 1) / seconds,
    cpuSeconds,
  };
}

async function benchPerplexity(dir: string, maxWindows: number | undefined) {
  const text = readFileSync(resolve(repoRoot, "../shared/data/demo-dev.txt"), "utf8");
  const ids = (await Tokenizer.load(dir)).encode(text);
  const { backend, layout } = await loadCpu(dir, 512);
  let last = 0;
  const cpuStart = process.cpuUsage();
  // How long the event loop is held between yields: what a server beside the backend would feel.
  const lag = monitorEventLoopDelay({ resolution: 5 });
  lag.enable();
  const result = await computePerplexity(backend, ids, {
    ctx: 512,
    maxWindows,
    kvLayout: layout,
    onProgress: (done, total) => {
      if (done - last >= 20 || done === total) {
        last = done;
        process.stderr.write(`ppl ${dir}: ${done}/${total} windows\n`);
      }
    },
  });
  lag.disable();
  await backend.dispose();
  const eventLoopDelayMs = {
    p50: lag.percentile(50) / 1e6,
    p99: lag.percentile(99) / 1e6,
    max: lag.max / 1e6,
  };
  return { ...result, cpuSeconds: cpuSecondsSince(cpuStart), eventLoopDelayMs };
}

const awqDir = join(repoRoot, "models/tiny-chat-awq");
const report: Record<string, unknown> = { node: process.version, loadAverageAtStart: loadavg() };
report.decode = await benchDecode(awqDir, Number(values["decode-tokens"]));
process.stderr.write(`decode: ${JSON.stringify(report.decode)}\n`);
if (!values["skip-ppl"]) {
  const windows = values["ppl-windows"] === undefined ? undefined : Number(values["ppl-windows"]);
  report.perplexity = await benchPerplexity(awqDir, windows);
}
report.loadAverageAtEnd = loadavg();
console.log(JSON.stringify(report, null, 2));
