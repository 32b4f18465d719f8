/**
 * Prometheus metrics under vLLM v1's names, labels (`model_name`, `engine`) and buckets, so vLLM's Grafana
 * dashboards work unchanged. Each server has its own registry (tests run several in one process).
 *
 * Counters carry the `_total` suffix that Python's prometheus_client adds to vLLM's counter names.
 *
 * Request timings as vLLM defines them: time to first token and end-to-end latency count from the HTTP
 * request's arrival; queue time from submission to the engine to the first scheduling; prefill from then to
 * the first token; decode from the first token to the last; inference = prefill + decode.
 *
 * Behind a replica router (--data-parallel-size) every series carries the `engine` label of the replica it
 * describes (engine-side gauges and counters from each replica's stats, request series from the replica that
 * ran the request), as vLLM labels its data-parallel engines.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { EngineClient, EngineStats, FinishReason } from "../engine/types.js";
import type { JobObserver } from "./generation.js";

const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
const TOKEN_INTERVAL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];
const ITERATION_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
const N_BUCKETS = [1, 2, 5, 10, 20];
/** vLLM's default max-model-len when the engine does not say (only test doubles). */
const DEFAULT_MAX_MODEL_LEN = 4096;

/** vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to `max`. */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let exponent = 0; ; exponent++) {
    for (const mantissa of [1, 2, 5]) {
      const value = mantissa * 10 ** exponent;
      if (value > max) return out;
      out.push(value);
    }
  }
}

/** What one finished engine request (one choice) contributes; times in seconds, null where unknown. */
export interface FinishedRequestSample {
  promptTokens: number;
  completionTokens: number;
  finishReason: FinishReason;
  /** From the HTTP request's arrival to the first output token; null when none came. */
  timeToFirstToken: number | null;
  /** From the HTTP request's arrival to the end. */
  e2eLatency: number;
  queueTime: number | null;
  prefillTime: number | null;
  decodeTime: number | null;
  inferenceTime: number | null;
  /** The replica that ran it (data parallelism; default 0). */
  engine?: number;
}

/** What one finished request group (a prompt's n choices) contributes. */
export interface RequestGroupSample {
  n: number;
  maxTokens: number | null;
  /** The most tokens any of its choices generated. */
  maxGenerationTokens: number;
  /** The replica that ran its first choice (data parallelism; default 0). */
  engine?: number;
}

type Labels = "model_name" | "engine";

export class ServerMetrics implements JobObserver {
  readonly registry = new Registry();
  private readonly stopListening: () => void;
  /** Labels of each replica (index = engine), [0] also for a single engine. */
  private readonly engineLabels: Record<Labels, string>[];
  private readonly histograms: Record<
    | "ttft"
    | "tpot"
    | "itl"
    | "e2e"
    | "queue"
    | "prefill"
    | "decode"
    | "inference"
    | "promptTokens"
    | "generationTokens"
    | "maxGenerationTokens"
    | "paramsN"
    | "paramsMaxTokens"
    | "iterationTokens",
    Histogram<Labels>
  >;
  private readonly promptTokens: Counter<Labels>;
  private readonly generationTokens: Counter<Labels>;
  private readonly requestSuccess: Counter<Labels | "finished_reason">;

  constructor(engine: EngineClient, modelName: string) {
    const registers = [this.registry];
    const labelNames = ["model_name", "engine"] as const;
    // One label set per replica (data parallelism: `engine` = the replica's index), as vLLM labels them.
    const statsOfEngines = (): EngineStats[] => engine.engineStats?.() ?? [engine.stats()];
    const engineLabels = statsOfEngines().map((_, i) => ({ model_name: modelName, engine: String(i) }));
    this.engineLabels = engineLabels;
    const gauge = (name: string, help: string, read: (stats: EngineStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          for (const [i, stats] of statsOfEngines().entries()) this.set(engineLabels[i], read(stats));
        },
      });
    gauge(
      "vllm:num_requests_running",
      "Number of requests in model execution batches.",
      (stats) => stats.running,
    );
    gauge(
      "vllm:num_requests_waiting",
      "Number of requests waiting to be processed.",
      (stats) => stats.waiting,
    );
    gauge(
      "vllm:kv_cache_usage_perc",
      "KV-cache usage. 1 means 100 percent usage.",
      (stats) => stats.kvCacheUsage,
    );
    // The names vLLM kept for older dashboards (its own grafana.json still reads them).
    gauge(
      "vllm:gpu_cache_usage_perc",
      "KV-cache usage. 1 means 100 percent usage. DEPRECATED: use vllm:kv_cache_usage_perc.",
      (stats) => stats.kvCacheUsage,
    );
    gauge(
      "vllm:num_requests_swapped",
      "Requests swapped to CPU memory: always 0 (awq-ts preempts by recompute, never swaps).",
      () => 0,
    );
    gauge("vllm:cpu_cache_usage_perc", "CPU KV-cache usage: always 0 (no CPU swap space).", () => 0);
    const cumulative = (name: string, help: string, read: (stats: EngineStats) => number | undefined) => {
      const reported = engineLabels.map(() => 0);
      const counter = new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          for (const [i, stats] of statsOfEngines().entries()) {
            const now = read(stats) ?? 0;
            if (now > reported[i]) this.inc(engineLabels[i], now - reported[i]);
            reported[i] = Math.max(reported[i], now);
          }
        },
      });
      for (const l of engineLabels) counter.inc(l, 0);
    };
    cumulative(
      "vllm:num_preemptions_total",
      "Cumulative number of preemption from the engine.",
      (stats) => stats.numPreemptions,
    );
    cumulative(
      "vllm:prefix_cache_queries_total",
      "Prefix cache queries, in terms of number of queried tokens.",
      (stats) => stats.prefixCacheQueries,
    );
    cumulative(
      "vllm:prefix_cache_hits_total",
      "Prefix cache hits, in terms of number of cached tokens.",
      (stats) => stats.prefixCacheHits,
    );
    const cacheInfo = new Gauge({
      name: "vllm:cache_config_info",
      help: "Information of the LLMEngine CacheConfig",
      labelNames: [
        "block_size",
        "cache_dtype",
        "enable_prefix_caching",
        "num_cpu_blocks",
        "num_gpu_blocks",
        "engine",
      ],
      registers,
    });
    for (const [i, stats] of statsOfEngines().entries()) {
      cacheInfo.set(
        {
          block_size: String(engine.blockSize ?? ""),
          cache_dtype: engine.kvCacheDtype ?? "auto",
          enable_prefix_caching: stats.enablePrefixCaching === false ? "False" : "True",
          num_cpu_blocks: "0",
          num_gpu_blocks: String(stats.numBlocks),
          engine: String(i),
        },
        1,
      );
    }

    const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers });
    this.promptTokens = counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.");
    this.generationTokens = counter("vllm:generation_tokens_total", "Number of generation tokens processed.");
    this.requestSuccess = new Counter({
      name: "vllm:request_success_total",
      help: "Count of successfully processed requests.",
      labelNames: [...labelNames, "finished_reason"],
      registers,
    });
    const maxModelLen = engine.maxModelLen ?? DEFAULT_MAX_MODEL_LEN;
    const histogram = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name, help, labelNames, registers, buckets });
    this.histograms = {
      ttft: histogram(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        TTFT_BUCKETS,
      ),
      tpot: histogram(
        "vllm:time_per_output_token_seconds",
        "Histogram of time per output token in seconds.",
        TOKEN_INTERVAL_BUCKETS,
      ),
      itl: histogram(
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        TOKEN_INTERVAL_BUCKETS,
      ),
      e2e: histogram(
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        REQUEST_LATENCY_BUCKETS,
      ),
      queue: histogram(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        REQUEST_LATENCY_BUCKETS,
      ),
      prefill: histogram(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        REQUEST_LATENCY_BUCKETS,
      ),
      decode: histogram(
        "vllm:request_decode_time_seconds",
        "Histogram of time spent in DECODE phase for request.",
        REQUEST_LATENCY_BUCKETS,
      ),
      inference: histogram(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        REQUEST_LATENCY_BUCKETS,
      ),
      promptTokens: histogram(
        "vllm:request_prompt_tokens",
        "Number of prefill tokens processed.",
        buckets125(maxModelLen),
      ),
      generationTokens: histogram(
        "vllm:request_generation_tokens",
        "Number of generation tokens processed.",
        buckets125(maxModelLen),
      ),
      maxGenerationTokens: histogram(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        buckets125(maxModelLen),
      ),
      paramsN: histogram("vllm:request_params_n", "Histogram of the n request parameter.", N_BUCKETS),
      paramsMaxTokens: histogram(
        "vllm:request_params_max_tokens",
        "Histogram of the max_tokens request parameter.",
        buckets125(maxModelLen),
      ),
      iterationTokens: histogram(
        "vllm:iteration_tokens_total",
        "Histogram of number of tokens per engine_step.",
        ITERATION_TOKEN_BUCKETS,
      ),
    };
    // Every labelled series exists from the start (a dashboard shows 0, not "no data").
    for (const labels of engineLabels) {
      for (const reason of ["stop", "length", "abort", "error"]) {
        this.requestSuccess.inc({ ...labels, finished_reason: reason }, 0);
      }
      this.promptTokens.inc(labels, 0);
      this.generationTokens.inc(labels, 0);
      for (const h of Object.values(this.histograms)) h.zero(labels);
    }
    this.stopListening =
      engine.onIteration?.((numTokens, engineIndex) =>
        this.histograms.iterationTokens.observe(this.labelsOf(engineIndex), numTokens),
      ) ?? (() => {});
    collectDefaultMetrics({ register: this.registry });
  }

  /** Stops listening to the engine (the server closed; the engine may live on, as in tests). */
  close(): void {
    this.stopListening();
  }

  /** The labels of replica `engine` (0 when absent or unknown). */
  private labelsOf(engine: number | undefined): Record<Labels, string> {
    return this.engineLabels[engine ?? 0] ?? this.engineLabels[0];
  }

  /** One finished choice. */
  choiceFinished(sample: FinishedRequestSample): void {
    const labels = this.labelsOf(sample.engine);
    const h = this.histograms;
    this.promptTokens.inc(labels, sample.promptTokens);
    this.generationTokens.inc(labels, sample.completionTokens);
    this.requestSuccess.inc({ ...labels, finished_reason: sample.finishReason });
    h.promptTokens.observe(labels, sample.promptTokens);
    h.generationTokens.observe(labels, sample.completionTokens);
    h.e2e.observe(labels, sample.e2eLatency);
    if (sample.timeToFirstToken !== null) h.ttft.observe(labels, sample.timeToFirstToken);
    if (sample.queueTime !== null) h.queue.observe(labels, sample.queueTime);
    if (sample.prefillTime !== null) h.prefill.observe(labels, sample.prefillTime);
    if (sample.decodeTime !== null) h.decode.observe(labels, sample.decodeTime);
    if (sample.inferenceTime !== null) h.inference.observe(labels, sample.inferenceTime);
  }

  /** The time between two outputs of a running choice, `tokens` tokens apart (vLLM v1 observes each). */
  tokenInterval(seconds: number, tokens: number, engine?: number): void {
    const labels = this.labelsOf(engine);
    for (let i = 0; i < tokens; i++) {
      this.histograms.tpot.observe(labels, seconds / tokens);
      this.histograms.itl.observe(labels, seconds / tokens);
    }
  }

  /** One finished request group (a prompt with its n choices). */
  groupFinished(sample: RequestGroupSample): void {
    const labels = this.labelsOf(sample.engine);
    this.histograms.paramsN.observe(labels, sample.n);
    if (sample.maxTokens !== null) this.histograms.paramsMaxTokens.observe(labels, sample.maxTokens);
    this.histograms.maxGenerationTokens.observe(labels, sample.maxGenerationTokens);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
