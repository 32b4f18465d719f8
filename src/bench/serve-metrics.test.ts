import assert from "node:assert/strict";
import { test } from "node:test";
import { computeServeMetrics, formatServeReport, percentile } from "./serve-metrics.js";
import type { RequestResult } from "./stream-request.js";

function result(over: Partial<RequestResult>): RequestResult {
  return {
    success: true,
    error: "",
    promptLen: 10,
    outputTokens: 4,
    serverPromptTokens: 11,
    generatedText: "abcd",
    ttftMs: 100,
    itlMs: [10, 20, 30],
    latencyMs: 160,
    startMs: 0,
    ...over,
  };
}

test("percentile interpolates linearly between ranks, as numpy.percentile does", () => {
  const sorted = [1, 2, 3, 4];
  assert.equal(percentile(sorted, 50), 2.5); // numpy.percentile([1,2,3,4], 50)
  assert.ok(Math.abs(percentile(sorted, 99) - 3.97) < 1e-12); // numpy: 3.97
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test("TPOT is (E2E - TTFT) / (output tokens - 1); failed requests count as failed and are left out", () => {
  const m = computeServeMetrics(
    [
      result({}),
      result({ startMs: 50, ttftMs: 200, latencyMs: 500, outputTokens: 7, itlMs: [50, 50, 50, 50, 50, 50] }),
      result({ success: false, error: "HTTP 500", outputTokens: 0, itlMs: [] }),
      result({ outputTokens: 1, itlMs: [], latencyMs: 100 }),
    ],
    2,
    [99],
  );
  assert.equal(m.completed, 3);
  assert.equal(m.failed, 1);
  assert.equal(m.totalOutputTokens, 12);
  assert.equal(m.totalInputTokens, 30);
  assert.equal(m.outputThroughput, 6);
  assert.equal(m.requestThroughput, 1.5);
  assert.equal(m.totalTokenThroughput, 21);
  // TPOTs: (160-100)/3 = 20 and (500-200)/6 = 50; the 1-token request has none.
  assert.equal(m.metrics.tpot.mean, 35);
  assert.equal(m.metrics.tpot.median, 35);
  assert.equal(m.metrics.ttft.median, 100);
  assert.equal(m.metrics.itl.mean, (60 + 300) / 9);
  assert.equal(m.metrics.e2el.mean, (160 + 500 + 100) / 3);
  assert.equal(m.peakConcurrentRequests, 4);
});

test("the report has vLLM's labels in vLLM's layout", () => {
  const m = computeServeMetrics([result({})], 1, [99]);
  const text = formatServeReport(m, {
    maxConcurrency: 16,
    requestRate: Number.POSITIVE_INFINITY,
    shownMetrics: ["ttft", "tpot", "itl", "e2el"],
  });
  const lines = text.split("\n");
  assert.equal(lines[0], "============ Serving Benchmark Result ============");
  assert.equal(lines.at(-1), "=".repeat(50));
  assert.ok(lines.includes("Successful requests:                     1"));
  assert.ok(lines.includes("Maximum request concurrency:             16"));
  assert.ok(lines.includes("Output token throughput (tok/s):         4.00"));
  assert.ok(lines.includes("-----Time per Output Token (excl. 1st token)------"));
  assert.ok(lines.includes("---------------Time to First Token----------------"));
  assert.ok(lines.includes("Median TTFT (ms):                        100.00"));
  assert.ok(lines.includes("P99 E2EL (ms):                           160.00"));
});
