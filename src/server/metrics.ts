/**
 * Prometheus metrics under vLLM's names, so existing dashboards work. Each server has its own registry
 * (tests run several in one process).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { EngineClient, FinishReason } from "../engine/types.js";

const LATENCY_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
const TPOT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5];

/** What one finished engine request (one choice) contributes. */
export interface FinishedRequestSample {
  promptTokens: number;
  completionTokens: number;
  finishReason: FinishReason;
  /** Seconds from arrival to the first output token; null when none came. */
  timeToFirstToken: number | null;
  /** Seconds from arrival to the end. */
  e2eLatency: number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly timeToFirstToken: Histogram<"model_name">;
  private readonly timePerOutputToken: Histogram<"model_name">;
  private readonly e2eLatency: Histogram<"model_name">;
  private readonly promptTokens: Counter<"model_name">;
  private readonly generationTokens: Counter<"model_name">;
  private readonly requestSuccess: Counter<"model_name" | "finished_reason">;

  constructor(
    engine: EngineClient,
    private readonly modelName: string,
  ) {
    const registers = [this.registry];
    const labelNames = ["model_name"] as const;
    const stat = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.set({ model_name: modelName }, read());
        },
      });
    stat("vllm:num_requests_running", "Requests running on the engine.", () => engine.stats().running);
    stat("vllm:num_requests_waiting", "Requests waiting to be scheduled.", () => engine.stats().waiting);
    stat(
      "vllm:kv_cache_usage_perc",
      "KV cache usage; 1 means 100 percent.",
      () => engine.stats().kvCacheUsage,
    );
    this.timeToFirstToken = new Histogram({
      name: "vllm:time_to_first_token_seconds",
      help: "Time to first token in seconds.",
      labelNames,
      registers,
      buckets: LATENCY_BUCKETS,
    });
    this.timePerOutputToken = new Histogram({
      name: "vllm:time_per_output_token_seconds",
      help: "Time per output token after the first, in seconds.",
      labelNames,
      registers,
      buckets: TPOT_BUCKETS,
    });
    this.e2eLatency = new Histogram({
      name: "vllm:e2e_request_latency_seconds",
      help: "End-to-end request latency in seconds.",
      labelNames,
      registers,
      buckets: LATENCY_BUCKETS,
    });
    this.promptTokens = new Counter({
      name: "vllm:prompt_tokens_total",
      help: "Prompt tokens processed.",
      labelNames,
      registers,
    });
    this.generationTokens = new Counter({
      name: "vllm:generation_tokens_total",
      help: "Generation tokens produced.",
      labelNames,
      registers,
    });
    this.requestSuccess = new Counter({
      name: "vllm:request_success_total",
      help: "Finished requests, by finish reason.",
      labelNames: ["model_name", "finished_reason"],
      registers,
    });
    collectDefaultMetrics({ register: this.registry });
  }

  observe(sample: FinishedRequestSample): void {
    const labels = { model_name: this.modelName };
    this.promptTokens.inc(labels, sample.promptTokens);
    this.generationTokens.inc(labels, sample.completionTokens);
    this.requestSuccess.inc({ ...labels, finished_reason: sample.finishReason });
    this.e2eLatency.observe(labels, sample.e2eLatency);
    if (sample.timeToFirstToken !== null) {
      this.timeToFirstToken.observe(labels, sample.timeToFirstToken);
      if (sample.completionTokens > 1) {
        const decodeTime = sample.e2eLatency - sample.timeToFirstToken;
        this.timePerOutputToken.observe(labels, decodeTime / (sample.completionTokens - 1));
      }
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
