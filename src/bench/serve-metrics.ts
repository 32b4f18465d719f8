/**
 * The numbers `awq bench serve` reports, computed as vLLM's benchmark computes them: throughput over the whole
 * run, and mean / median / std / chosen percentiles (numpy's linear interpolation) of TTFT, TPOT (the time
 * after the first token divided by the tokens after it), ITL and E2E latency, over the successful requests.
 */
import type { RequestResult } from "./stream-request.js";

export type MetricName = "ttft" | "tpot" | "itl" | "e2el";
export const METRIC_NAMES: readonly MetricName[] = ["ttft", "tpot", "itl", "e2el"];

export interface MetricSummary {
  mean: number;
  median: number;
  std: number;
  /** Percentile (e.g. 99) -> value, in ms. */
  percentiles: [number, number][];
}

export interface ServeMetrics {
  completed: number;
  failed: number;
  durationS: number;
  totalInputTokens: number;
  totalOutputTokens: number;
  requestThroughput: number;
  outputThroughput: number;
  totalTokenThroughput: number;
  /** Most output tokens that arrived in any one-second window of the run, per second. */
  peakOutputThroughput: number;
  /** Most requests in flight at once. */
  peakConcurrentRequests: number;
  metrics: Record<MetricName, MetricSummary>;
}

/** numpy.percentile with its default linear interpolation; NaN for an empty list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export function summarize(values: readonly number[], percentiles: readonly number[]): MetricSummary {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = n === 0 ? Number.NaN : sorted.reduce((a, b) => a + b, 0) / n;
  const std = n === 0 ? Number.NaN : Math.sqrt(sorted.reduce((a, v) => a + (v - mean) ** 2, 0) / n);
  return {
    mean,
    median: percentile(sorted, 50),
    std,
    percentiles: percentiles.map((p) => [p, percentile(sorted, p)]),
  };
}

/** Output token arrival times (ms, performance.now()) of one successful request, one per text chunk. */
function tokenTimes(r: RequestResult): number[] {
  const times = [r.startMs + r.ttftMs];
  for (const gap of r.itlMs) times.push(times.at(-1)! + gap);
  return times;
}

function peakPerSecond(times: number[]): number {
  times.sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < times.length; hi++) {
    while (times[hi]! - times[lo]! >= 1000) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

function peakConcurrency(results: readonly RequestResult[]): number {
  const events = results.flatMap((r) => [
    [r.startMs, 1],
    [r.startMs + r.latencyMs, -1],
  ]);
  events.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  let now = 0;
  let peak = 0;
  for (const [, delta] of events) {
    now += delta!;
    peak = Math.max(peak, now);
  }
  return peak;
}

export function computeServeMetrics(
  results: readonly RequestResult[],
  durationS: number,
  percentiles: readonly number[],
): ServeMetrics {
  const ok = results.filter((r) => r.success);
  const ttfts = ok.map((r) => r.ttftMs);
  const tpots = ok
    .filter((r) => r.outputTokens > 1)
    .map((r) => (r.latencyMs - r.ttftMs) / (r.outputTokens - 1));
  const itls = ok.flatMap((r) => r.itlMs);
  const e2els = ok.map((r) => r.latencyMs);
  const totalInputTokens = ok.reduce((n, r) => n + r.promptLen, 0);
  const totalOutputTokens = ok.reduce((n, r) => n + r.outputTokens, 0);
  return {
    completed: ok.length,
    failed: results.length - ok.length,
    durationS,
    totalInputTokens,
    totalOutputTokens,
    requestThroughput: ok.length / durationS,
    outputThroughput: totalOutputTokens / durationS,
    totalTokenThroughput: (totalInputTokens + totalOutputTokens) / durationS,
    peakOutputThroughput: peakPerSecond(ok.flatMap(tokenTimes)),
    peakConcurrentRequests: peakConcurrency(results),
    metrics: {
      ttft: summarize(ttfts, percentiles),
      tpot: summarize(tpots, percentiles),
      itl: summarize(itls, percentiles),
      e2el: summarize(e2els, percentiles),
    },
  };
}

const HEADERS: Record<MetricName, [string, string]> = {
  ttft: ["Time to First Token", "TTFT"],
  tpot: ["Time per Output Token (excl. 1st token)", "TPOT"],
  itl: ["Inter-token Latency", "ITL"],
  e2el: ["End-to-end Latency", "E2EL"],
};

function centered(title: string, fill: string): string {
  const s = title;
  const pad = Math.max(0, 50 - s.length);
  const left = Math.floor(pad / 2);
  return fill.repeat(left) + s + fill.repeat(pad - left);
}

function row(label: string, value: string | number, digits?: number): string {
  const text = typeof value === "number" && digits !== undefined ? value.toFixed(digits) : String(value);
  return `${label.padEnd(40)} ${text.padEnd(10)}`;
}

export interface ReportContext {
  maxConcurrency: number | null;
  requestRate: number;
  shownMetrics: readonly MetricName[];
}

/** The report as vLLM prints it (same labels, same layout). */
export function formatServeReport(m: ServeMetrics, ctx: ReportContext): string {
  const lines = [
    centered(" Serving Benchmark Result ", "="),
    row("Successful requests:", m.completed),
    row("Failed requests:", m.failed),
  ];
  if (ctx.maxConcurrency !== null) lines.push(row("Maximum request concurrency:", ctx.maxConcurrency));
  lines.push(
    row(
      "Request rate configured (RPS):",
      Number.isFinite(ctx.requestRate) ? ctx.requestRate.toFixed(2) : "inf",
    ),
    row("Benchmark duration (s):", m.durationS, 2),
    row("Total input tokens:", m.totalInputTokens),
    row("Total generated tokens:", m.totalOutputTokens),
    row("Request throughput (req/s):", m.requestThroughput, 2),
    row("Output token throughput (tok/s):", m.outputThroughput, 2),
    row("Peak output token throughput (tok/s):", m.peakOutputThroughput, 2),
    row("Peak concurrent requests:", m.peakConcurrentRequests, 2),
    row("Total Token throughput (tok/s):", m.totalTokenThroughput, 2),
  );
  for (const name of ctx.shownMetrics) {
    const [title, short] = HEADERS[name];
    const s = m.metrics[name];
    lines.push(
      centered(title, "-"),
      row(`Mean ${short} (ms):`, s.mean, 2),
      row(`Median ${short} (ms):`, s.median, 2),
    );
    for (const [p, v] of s.percentiles) lines.push(row(`P${p} ${short} (ms):`, v, 2));
  }
  lines.push("=".repeat(50));
  return lines.map((l) => l.trimEnd()).join("\n");
}
