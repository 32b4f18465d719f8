/** `awq bench latency`: prefill and decode throughput of the CUDA backend on a synthetic AWQ model (--shape). */

import type { Command } from "commander";
import { type LatencyBenchResult, runLatencyBench } from "../../backend/cuda/latency-bench.js";
import type { KvCacheDtype } from "../../backend/kv-cache-dtype.js";
import { SYNTHETIC_SHAPES } from "../../model/synthetic-checkpoint.js";
import {
  fractionFlag,
  intListFlag,
  KV_CACHE_DTYPE_HELP,
  kvCacheDtypeFlag,
  positiveIntegerFlag,
} from "../flags.js";
import { registerBenchCpu } from "./bench-cpu.js";
import { registerBenchServe } from "./bench-serve.js";
import { jsonErrors, withJsonErrors } from "./json-errors.js";
import { registerSyntheticCheckpoint } from "./synthetic-checkpoint.js";

interface LatencyFlags {
  shape: string;
  layers?: number;
  prefill: number[];
  batches: number[];
  context: number[];
  steps: number;
  repeats: number;
  gpuMemoryUtilization: number;
  kvCacheDtype: KvCacheDtype;
  profile?: boolean;
  json?: boolean;
}

/**
 * Time a decode step's GPU waited for the host (issue 13: <= 0.1 ms at batch 1): the wall time a step minus its GPU
 * time (upload to download, CUDA events), never below 0.
 */
function hostGapUs(d: LatencyBenchResult["decode"][number]): number {
  return Math.max(0, (d.msPerStep - d.gpuMsPerStep) * 1000);
}

export function formatLatency(r: LatencyBenchResult): string {
  const lines = [
    `device: ${r.device}`,
    `model:  ${r.model}, ${(r.weightBytes / 1e9).toFixed(2)} GB of weights, ${r.numBlocks} KV blocks`,
    "",
    "| what | context | tokens/s | time | GPU time | weights + KV GB/s | GPU idle / step |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const p of r.prefill) {
    lines.push(
      `| prefill ${p.tokens} tokens | | ${p.tokensPerSecond.toFixed(0)} | ${p.ms.toFixed(1)} ms | | | |`,
    );
  }
  for (const d of r.decode) {
    lines.push(
      `| decode batch ${d.batch} | ${d.context} | ${d.tokensPerSecond.toFixed(1)} | ${d.msPerStep.toFixed(2)} ms/step | ${d.gpuMsPerStep.toFixed(2)} ms | ${d.gbPerSecond.toFixed(0)} | ${hostGapUs(d).toFixed(0)} us |`,
    );
  }
  for (const p of r.prefill) {
    if (p.profile === undefined) continue;
    const ops = Object.entries(p.profile).sort((a, b) => b[1] - a[1]);
    lines.push(
      "",
      `profile, prefill ${p.tokens} (GPU ms): ${ops.map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ")}`,
    );
  }
  for (const d of r.decode) {
    if (d.profile === undefined) continue;
    const ops = Object.entries(d.profile).sort((a, b) => b[1] - a[1]);
    const gbs = d.profileGBs ?? {};
    lines.push(
      "",
      `profile, decode batch ${d.batch} context ${d.context} (GPU ms per step, eager; GB/s where the bytes are known): ${ops
        .map(([k, v]) => `${k} ${v.toFixed(3)}${gbs[k] !== undefined ? ` (${gbs[k].toFixed(0)} GB/s)` : ""}`)
        .join(", ")}`,
    );
  }
  return lines.join("\n");
}

export function registerBench(program: Command): void {
  const bench = program
    .command("bench")
    .description(
      "benchmarks: latency (prefill and decode tokens/s of the CUDA backend; an NVIDIA GPU), cpu (the CPU backend), serve (a running server, as `vllm bench serve`), synthetic-checkpoint (a random AWQ model on disk)",
    );
  registerBenchCpu(bench);
  registerBenchServe(bench);
  registerSyntheticCheckpoint(bench);
  jsonErrors(bench.command("latency"))
    .description(
      "prefill and decode tokens/s of the CUDA backend on a synthetic AWQ model (Llama-2-13B's shape unless --shape; random weights generated on the GPU)",
    )
    .option(
      "--shape <name>",
      `model shape: ${Object.keys(SYNTHETIC_SHAPES).join(", ")} (as \`awq bench synthetic-checkpoint\`)`,
      "llama-2-13b",
    )
    .option(
      "--layers <n>",
      "decoder layers (default: the shape's; 40 = the full 13B)",
      positiveIntegerFlag("--layers"),
    )
    .option("--prefill <list>", "prompt lengths to time", intListFlag("--prefill"), [512, 2048])
    .option("--batches <list>", "decode batch sizes to time", intListFlag("--batches"), [1, 8, 32, 128])
    .option(
      "--context <list>",
      "tokens in each sequence's KV before the timed decode steps; every batch size is timed at each",
      intListFlag("--context"),
      [128, 512, 2048],
    )
    .option("--steps <n>", "timed decode steps per batch size", positiveIntegerFlag("--steps"), 96)
    .option(
      "--repeats <n>",
      "timed prefill runs (the median is reported)",
      positiveIntegerFlag("--repeats"),
      5,
    )
    .option(
      "--gpu-memory-utilization <f>",
      "fraction of GPU memory to use",
      fractionFlag("--gpu-memory-utilization"),
      0.9,
    )
    .option("--kv-cache-dtype <dtype>", KV_CACHE_DTYPE_HELP, kvCacheDtypeFlag, "auto")
    .option("--profile", "also time each operation of a few eager decode steps")
    .option("--json", "print one JSON object instead of the table (errors too)")
    .action(
      withJsonErrors(async (flags: LatencyFlags) => {
        const result = await runLatencyBench({
          shape: flags.shape,
          layers: flags.layers,
          prefillLengths: flags.prefill,
          decodeBatches: flags.batches,
          decodeContexts: flags.context,
          decodeSteps: flags.steps,
          repeats: flags.repeats,
          gpuMemoryUtilization: flags.gpuMemoryUtilization,
          kvCacheDtype: flags.kvCacheDtype,
          profile: flags.profile,
          onProgress: flags.json ? undefined : (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(flags.json ? `${JSON.stringify(result)}\n` : `${formatLatency(result)}\n`);
      }),
    );
}
