/**
 * `awq bench serve`: the serving benchmark of `vllm bench serve`, against any OpenAI-compatible server (ours or
 * vLLM). Random prompts of an exact token count, streamed requests at a Poisson rate under a concurrency cap,
 * and vLLM's report (throughput; TTFT, TPOT, ITL, E2EL mean / median / percentiles); --save-result writes
 * vLLM's JSON.
 *
 *   awq bench serve --base-url http://127.0.0.1:8000 --dataset-name random --random-input-len 512 \
 *     --random-output-len 128 --ignore-eos --num-prompts 200 --max-concurrency 16 --save-result
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { randomDataset } from "../../bench/random-dataset.js";
import { runServeBench, testRequest } from "../../bench/serve-bench.js";
import {
  formatServeReport,
  METRIC_NAMES,
  type MetricName,
  type ServeMetrics,
} from "../../bench/serve-metrics.js";
import type { BenchEndpoint, RequestResult, RequestTarget } from "../../bench/stream-request.js";
import { resolveModelPath } from "../../hub/resolve.js";
import { Tokenizer } from "../../tokenizer/tokenizer.js";
import { integerAtLeastFlag, portFlag, positiveIntegerFlag } from "../flags.js";
import { createProgressBar } from "../progress.js";

interface BenchServeFlags {
  baseUrl?: string;
  host: string;
  port: number;
  endpoint: BenchEndpoint;
  model?: string;
  tokenizer?: string;
  datasetName: string;
  randomInputLen: number;
  randomOutputLen: number;
  randomRangeRatio: number;
  numPrompts: number;
  maxConcurrency?: number;
  requestRate: number;
  ignoreEos?: boolean;
  seed: number;
  apiKey?: string;
  percentileMetrics: MetricName[];
  metricPercentiles: number[];
  saveResult?: boolean;
  resultDir?: string;
  resultFilename?: string;
  disableTqdm?: boolean;
}

function endpointFlag(value: string): BenchEndpoint {
  if (value === "completions" || value === "/v1/completions") return "completions";
  if (value === "chat" || value === "/v1/chat/completions" || value === "chat/completions") return "chat";
  throw new InvalidArgumentError(
    `--endpoint must be completions (/v1/completions) or chat (/v1/chat/completions), got "${value}"`,
  );
}

function requestRateFlag(value: string): number {
  if (value === "inf") return Number.POSITIVE_INFINITY;
  const rate = Number(value);
  if (value.trim() === "" || !(rate > 0)) {
    throw new InvalidArgumentError(`--request-rate needs requests per second > 0, or inf, got "${value}"`);
  }
  return rate;
}

function rangeRatioFlag(value: string): number {
  const ratio = Number(value);
  if (value.trim() === "" || !(ratio >= 0 && ratio < 1)) {
    throw new InvalidArgumentError(`--random-range-ratio needs a number in [0, 1), got "${value}"`);
  }
  return ratio;
}

function metricListFlag(value: string): MetricName[] {
  return value.split(",").map((name) => {
    const trimmed = name.trim() as MetricName;
    if (!METRIC_NAMES.includes(trimmed)) {
      throw new InvalidArgumentError(
        `--percentile-metrics takes a comma list of ${METRIC_NAMES.join(", ")}, got "${name}"`,
      );
    }
    return trimmed;
  });
}

function percentileListFlag(value: string): number[] {
  return value.split(",").map((p) => {
    const parsed = Number(p);
    if (p.trim() === "" || !(parsed > 0 && parsed < 100)) {
      throw new InvalidArgumentError(`--metric-percentiles takes numbers in (0, 100), got "${p}"`);
    }
    return parsed;
  });
}

interface ServedModel {
  id: string;
  root?: string;
}

async function servedModels(baseUrl: string, apiKey: string | undefined): Promise<ServedModel[]> {
  const res = await fetch(`${baseUrl}/v1/models`, {
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
  }).catch((err: Error) => {
    throw new Error(
      `cannot reach ${baseUrl}/v1/models: ${err.message}${err.cause ? ` (${(err.cause as Error).message})` : ""}`,
    );
  });
  if (res.status !== 200)
    throw new Error(`${baseUrl}/v1/models answered HTTP ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { data: ServedModel[] }).data;
}

/** The tokenizer the prompts are sized for: --tokenizer, else --model, else the served model's folder. */
async function loadTokenizer(flags: BenchServeFlags, served: ServedModel | undefined): Promise<Tokenizer> {
  const candidates = [flags.tokenizer, flags.model, served?.root].filter((c): c is string => !!c);
  let lastError: Error | null = null;
  for (const spec of candidates) {
    try {
      return await Tokenizer.load(await resolveModelPath(spec));
    } catch (err) {
      lastError = err as Error;
      if (flags.tokenizer !== undefined) break;
    }
  }
  throw new Error(
    `no tokenizer to size the random prompts: pass --tokenizer (a model folder, a hub id or "demo")${lastError ? ` (${lastError.message})` : ""}`,
  );
}

async function serverCounter(baseUrl: string, name: string): Promise<number | null> {
  try {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    let total: number | null = null;
    for (const line of text.split("\n")) {
      if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        total = (total ?? 0) + Number(line.split(" ").at(-1));
    }
    return total;
  } catch {
    return null;
  }
}

function timestamp(): string {
  const d = new Date();
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}-${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
}

/** vLLM's saved-result JSON: the run's settings, the totals, per-request lists and every metric statistic. */
export function resultJson(
  flags: BenchServeFlags,
  modelId: string,
  tokenizerId: string,
  m: ServeMetrics,
  results: readonly RequestResult[],
  preemptions: number | null,
): Record<string, unknown> {
  const json: Record<string, unknown> = {
    date: timestamp(),
    endpoint_type: flags.endpoint === "chat" ? "openai-chat" : "openai",
    model_id: modelId,
    tokenizer_id: tokenizerId,
    num_prompts: flags.numPrompts,
    request_rate: Number.isFinite(flags.requestRate) ? flags.requestRate : "inf",
    burstiness: 1.0,
    max_concurrency: flags.maxConcurrency ?? null,
    random_input_len: flags.randomInputLen,
    random_output_len: flags.randomOutputLen,
    random_range_ratio: flags.randomRangeRatio,
    ignore_eos: flags.ignoreEos === true,
    duration: m.durationS,
    completed: m.completed,
    failed: m.failed,
    total_input_tokens: m.totalInputTokens,
    total_output_tokens: m.totalOutputTokens,
    request_throughput: m.requestThroughput,
    output_throughput: m.outputThroughput,
    max_output_tokens_per_s: m.peakOutputThroughput,
    max_concurrent_requests: m.peakConcurrentRequests,
    total_token_throughput: m.totalTokenThroughput,
    num_preemptions: preemptions,
    input_lens: results.map((r) => r.promptLen),
    server_prompt_tokens: results.map((r) => r.serverPromptTokens),
    output_lens: results.map((r) => r.outputTokens),
    ttfts: results.map((r) => r.ttftMs / 1000),
    itls: results.map((r) => r.itlMs.map((ms) => ms / 1000)),
    generated_texts: results.map((r) => r.generatedText),
    errors: results.map((r) => r.error),
  };
  for (const name of METRIC_NAMES) {
    const s = m.metrics[name];
    json[`mean_${name}_ms`] = s.mean;
    json[`median_${name}_ms`] = s.median;
    json[`std_${name}_ms`] = s.std;
    for (const [p, v] of s.percentiles) json[`p${p}_${name}_ms`] = v;
  }
  return json;
}

export function registerBenchServe(bench: Command): void {
  bench
    .command("serve")
    .description(
      "serving benchmark of a running OpenAI-compatible server (awq serve, vLLM), as `vllm bench serve`: random prompts, streamed, TTFT / TPOT / ITL / E2EL",
    )
    .option("--base-url <url>", "server URL (e.g. http://127.0.0.1:8000); overrides --host/--port")
    .option("--host <host>", "server host", "127.0.0.1")
    .option("--port <port>", "server port", portFlag, 8000)
    .option(
      "--endpoint <kind>",
      "completions (/v1/completions) or chat (/v1/chat/completions)",
      endpointFlag,
      "completions",
    )
    .option("--model <name>", "model name sent in each request (default: the server's first model)")
    .option(
      "--tokenizer <model>",
      "tokenizer that sizes the prompts (default: --model, else the served model's folder)",
    )
    .option("--dataset-name <name>", "prompt source: random", "random")
    .option(
      "--random-input-len <n>",
      "prompt tokens per request",
      positiveIntegerFlag("--random-input-len"),
      1024,
    )
    .option(
      "--random-output-len <n>",
      "max_tokens per request",
      positiveIntegerFlag("--random-output-len"),
      128,
    )
    .option("--random-range-ratio <r>", "lengths drawn from [n(1-r), n(1+r)]", rangeRatioFlag, 0)
    .option("--num-prompts <n>", "requests to send", positiveIntegerFlag("--num-prompts"), 1000)
    .option(
      "--max-concurrency <n>",
      "at most this many requests in flight",
      positiveIntegerFlag("--max-concurrency"),
    )
    .addOption(
      // Infinity would show as "(default: null)" in --help (commander prints defaults as JSON).
      new Option("--request-rate <rps>", "requests per second (Poisson arrivals), or inf: all at once")
        .argParser(requestRateFlag)
        .default(Number.POSITIVE_INFINITY, "inf"),
    )
    .option("--ignore-eos", "send ignore_eos: every request generates its full --random-output-len")
    .option("--seed <n>", "seed of the prompts and arrival times", integerAtLeastFlag("--seed", 0), 0)
    .option("--api-key <key>", "bearer token (default: $OPENAI_API_KEY)")
    .option("--percentile-metrics <list>", "metrics to report: ttft,tpot,itl,e2el", metricListFlag, [
      ...METRIC_NAMES,
    ])
    .option("--metric-percentiles <list>", "percentiles to report", percentileListFlag, [99])
    .option("--save-result", "write the results as JSON (vLLM's fields)")
    .option("--result-dir <dir>", "folder of the JSON file (default: the working directory)")
    .option("--result-filename <name>", "name of the JSON file")
    .option("--disable-tqdm", "no progress bar")
    .action(async (flags: BenchServeFlags) => {
      if (flags.datasetName !== "random") {
        throw new Error(
          `--dataset-name ${flags.datasetName} is not supported: awq bench serve builds random prompts only`,
        );
      }
      const baseUrl = (flags.baseUrl ?? `http://${flags.host}:${flags.port}`).replace(/\/+$/, "");
      const apiKey = flags.apiKey ?? process.env.OPENAI_API_KEY;
      const models = await servedModels(baseUrl, apiKey);
      const served = flags.model === undefined ? models[0] : models.find((m) => m.id === flags.model);
      const modelId = flags.model ?? served?.id;
      if (modelId === undefined) throw new Error(`${baseUrl}/v1/models lists no model: pass --model`);
      const tokenizer = await loadTokenizer(flags, served);
      const requests = await randomDataset(tokenizer, {
        numPrompts: flags.numPrompts,
        inputLen: flags.randomInputLen,
        outputLen: flags.randomOutputLen,
        rangeRatio: flags.randomRangeRatio,
        seed: flags.seed,
      });
      const target: RequestTarget = {
        baseUrl,
        endpoint: flags.endpoint,
        model: modelId,
        apiKey,
        ignoreEos: flags.ignoreEos === true,
      };
      process.stderr.write("Starting initial single prompt test run...\n");
      await testRequest(target, requests[0]!);
      process.stderr.write(
        `Initial test run completed. Starting main benchmark run...\nTraffic request rate: ${Number.isFinite(flags.requestRate) ? flags.requestRate : "inf"}\nBurstiness factor: 1.0 (Poisson process)\nMaximum request concurrency: ${flags.maxConcurrency ?? "None"}\n`,
      );
      const preemptionsBefore = await serverCounter(baseUrl, "vllm:num_preemptions_total");
      const bar = createProgressBar("requests", {
        total: requests.length,
        unit: "requests",
        quiet: flags.disableTqdm,
      });
      let firstError: string | null = null;
      const run = await runServeBench({
        target,
        requests,
        requestRate: flags.requestRate,
        maxConcurrency: flags.maxConcurrency ?? null,
        seed: flags.seed,
        percentiles: flags.metricPercentiles,
        onRequestDone: (r) => {
          if (!r.success && firstError === null) firstError = r.error;
          bar.increment();
        },
      });
      bar.stop();
      const preemptionsAfter = await serverCounter(baseUrl, "vllm:num_preemptions_total");
      const preemptions =
        preemptionsBefore !== null && preemptionsAfter !== null ? preemptionsAfter - preemptionsBefore : null;
      const report = formatServeReport(run.metrics, {
        maxConcurrency: flags.maxConcurrency ?? null,
        requestRate: flags.requestRate,
        shownMetrics: flags.percentileMetrics,
      });
      const lines = report.split("\n");
      // Beside vLLM's lines: the server's preemptions during the run (from its /metrics, when it has them).
      lines.splice(lines.length - 1, 0, `${"Preemptions (server):".padEnd(40)} ${preemptions ?? "n/a"}`);
      process.stdout.write(`${lines.join("\n")}\n`);
      if (firstError !== null) {
        process.stderr.write(`${run.metrics.failed} request(s) failed; the first error: ${firstError}\n`);
      }
      if (flags.saveResult) {
        const rate = Number.isFinite(flags.requestRate) ? String(flags.requestRate) : "inf";
        const name =
          flags.resultFilename ??
          `awq-${rate}qps-concurrency${flags.maxConcurrency ?? "inf"}-${path.basename(modelId)}-${timestamp()}.json`;
        const file = path.resolve(flags.resultDir ?? ".", name);
        const json = resultJson(flags, modelId, tokenizer.dir, run.metrics, run.results, preemptions);
        await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
        process.stderr.write(`results written to ${file}\n`);
      }
      if (run.metrics.failed > 0) process.exitCode = 1;
    });
}
