/**
 * `awq bench cpu`: prefill and decode tokens/s of the CPU backend, through the engine as `awq serve` runs it
 * (continuous batching, paged KV cache), on the demo model unless another is named.
 */
import { cpus, loadavg } from "node:os";
import type { Command } from "commander";
import { DEMO_MODEL_ALIAS } from "../../demo-model.js";
import { LLM } from "../../llm.js";
import { intListFlag, modelFromArgs, positiveIntegerFlag } from "../flags.js";
import { jsonErrors, withJsonErrors } from "./json-errors.js";

export interface CpuBenchOptions {
  model?: string;
  /** Prompt lengths to time (one request each, one output token). */
  prefill: number[];
  /** Numbers of sequences decoding together. */
  batches: number[];
  /** Tokens each sequence generates in a decode run. */
  tokens: number;
  /** Timed runs per prefill length (the median is reported), after one untimed warm-up run. */
  repeats: number;
  onProgress?: (line: string) => void;
}

export interface CpuBenchResult {
  model: string;
  machine: { cpu: string; cores: number; loadAverage: number[] };
  prefill: { tokens: number; ms: number; tokensPerSecond: number }[];
  decode: { batch: number; tokens: number; msPerStep: number; tokensPerSecond: number }[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** `length` prompt ids: BOS, then real text's tokens repeated (`shift` varies the text between sequences). */
function promptIds(text: number[], length: number, shift: number): number[] {
  const ids = [text[0]!];
  for (let i = 1; i < length; i++) ids.push(text[1 + ((i + shift) % (text.length - 1))]!);
  return ids;
}

export async function runCpuBench(opts: CpuBenchOptions): Promise<CpuBenchResult> {
  const say = opts.onProgress ?? (() => {});
  const maxBatch = Math.max(...opts.batches);
  const maxModelLen = Math.max(...opts.prefill, 16 + opts.tokens) + 1;
  const llm = await LLM.load({
    model: opts.model ?? DEMO_MODEL_ALIAS,
    backend: "cpu",
    maxModelLen,
    maxNumSeqs: maxBatch,
    maxNumBatchedTokens: Math.max(maxModelLen, maxBatch * 16),
    // Every run must compute its whole prompt: a cache hit would time nothing.
    enablePrefixCaching: false,
  });
  try {
    const text = llm.tokenizer.encode(
      "In the beginning God created the heaven and the earth. A fortune awaits you: patience is a virtue.",
    );
    const result: CpuBenchResult = {
      model: llm.modelPath,
      machine: { cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, loadAverage: loadavg() },
      prefill: [],
      decode: [],
    };
    const greedyOne = { temperature: 0, maxTokens: 1, ignoreEos: true };
    for (const tokens of opts.prefill) {
      const times: number[] = [];
      for (let run = 0; run <= opts.repeats; run++) {
        const started = performance.now();
        await llm.generate(promptIds(text, tokens, run), greedyOne);
        if (run > 0) times.push(performance.now() - started);
      }
      const ms = median(times);
      result.prefill.push({ tokens, ms, tokensPerSecond: (tokens / ms) * 1000 });
      say(`prefill ${tokens} tokens: ${((tokens / ms) * 1000).toFixed(0)} tokens/s`);
    }
    for (const batch of opts.batches) {
      // All sequences start together; decode is timed from the step where the last one got its first token.
      const firstAt: number[] = [];
      let endedAt = 0;
      const runs = Array.from({ length: batch }, async (_, b) => {
        let first = true;
        const params = { temperature: 0, maxTokens: opts.tokens, ignoreEos: true };
        for await (const _out of llm.stream(promptIds(text, 16, b * 5), params)) {
          if (first) firstAt.push(performance.now());
          first = false;
        }
        endedAt = Math.max(endedAt, performance.now());
      });
      await Promise.all(runs);
      const steps = opts.tokens - 1;
      const ms = endedAt - Math.max(...firstAt);
      const row = {
        batch,
        tokens: steps * batch,
        msPerStep: ms / steps,
        tokensPerSecond: ((steps * batch) / ms) * 1000,
      };
      result.decode.push(row);
      say(`decode batch ${batch}: ${row.tokensPerSecond.toFixed(1)} tokens/s`);
    }
    return result;
  } finally {
    await llm.dispose();
  }
}

export function formatCpuBench(r: CpuBenchResult): string {
  const lines = [
    `model:   ${r.model}`,
    `machine: ${r.machine.cores} x ${r.machine.cpu}, load average ${r.machine.loadAverage.map((l) => l.toFixed(2)).join(" ")}`,
    "",
    "| what | tokens/s | time |",
    "| --- | ---: | ---: |",
  ];
  for (const p of r.prefill) {
    lines.push(`| prefill ${p.tokens} tokens | ${p.tokensPerSecond.toFixed(0)} | ${p.ms.toFixed(1)} ms |`);
  }
  for (const d of r.decode) {
    lines.push(
      `| decode batch ${d.batch} | ${d.tokensPerSecond.toFixed(1)} | ${d.msPerStep.toFixed(2)} ms/step |`,
    );
  }
  return lines.join("\n");
}

interface CpuFlags {
  model?: string;
  prefill: number[];
  batches: number[];
  tokens: number;
  repeats: number;
  json?: boolean;
}

export function registerBenchCpu(bench: Command): void {
  jsonErrors(bench.command("cpu"))
    .description(
      "prefill and decode tokens/s of the CPU backend through the engine (continuous batching), on the demo model by default",
    )
    .argument("[model]", 'model folder, hub id or "demo" (default: demo; or --model)')
    .option("--model <dirOrId>", 'model folder, hub id or "demo" (same as the positional argument)')
    .option("--prefill <list>", "prompt lengths to time", intListFlag("--prefill"), [128, 512])
    .option(
      "--batches <list>",
      "numbers of sequences decoding together",
      intListFlag("--batches"),
      [1, 4, 16],
    )
    .option(
      "--tokens <n>",
      "tokens each sequence generates in a decode run (>= 2)",
      positiveIntegerFlag("--tokens"),
      32,
    )
    .option(
      "--repeats <n>",
      "timed prefill runs (the median is reported)",
      positiveIntegerFlag("--repeats"),
      3,
    )
    .option("--json", "print one JSON object instead of the table (errors too)")
    .action(
      withJsonErrors(async (positional: string | undefined, flags: CpuFlags) => {
        if (flags.tokens < 2)
          throw new Error("--tokens must be at least 2 (one prefill token, one decode step)");
        const result = await runCpuBench({
          model: modelFromArgs("bench cpu", positional, flags.model, DEMO_MODEL_ALIAS),
          prefill: flags.prefill,
          batches: flags.batches,
          tokens: flags.tokens,
          repeats: flags.repeats,
          onProgress: flags.json ? undefined : (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(flags.json ? `${JSON.stringify(result)}\n` : `${formatCpuBench(result)}\n`);
      }),
    );
}
