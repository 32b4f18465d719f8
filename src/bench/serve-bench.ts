/**
 * The run of `awq bench serve`: one test request first (the run stops with its error if it fails), then every
 * prompt, sent at `requestRate` (a Poisson process; Infinity sends them all at once) with at most
 * `maxConcurrency` in flight, each streamed and timed; then the metrics over the successful ones.
 */
import type { BenchRequestSpec } from "./random-dataset.js";
import { SeededRandom } from "./seeded-random.js";
import { computeServeMetrics, type ServeMetrics } from "./serve-metrics.js";
import { type RequestResult, type RequestTarget, sendStreamedRequest } from "./stream-request.js";

export interface ServeBenchOptions {
  target: RequestTarget;
  requests: readonly BenchRequestSpec[];
  /** Requests per second; Infinity sends them all at time 0. */
  requestRate: number;
  /** At most this many requests in flight; null = no limit. */
  maxConcurrency: number | null;
  seed: number;
  percentiles: readonly number[];
  /** Called after each request ends (the progress bar). */
  onRequestDone?: (result: RequestResult) => void;
}

export interface ServeBenchRun {
  metrics: ServeMetrics;
  results: RequestResult[];
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** A counting semaphore: at most `limit` holders at once, waiters served in arrival order. */
class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];

  constructor(limit: number) {
    this.free = limit;
  }

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

/** Sends the first prompt once, untimed, and throws its error if it fails: a wrong URL or model stops here. */
export async function testRequest(target: RequestTarget, spec: BenchRequestSpec): Promise<void> {
  const result = await sendStreamedRequest(target, { ...spec, outputLen: Math.min(spec.outputLen, 4) });
  if (!result.success) {
    throw new Error(
      `the test request to ${target.baseUrl} failed: ${result.error}. Check --base-url/--host/--port, --model, --endpoint and --api-key`,
    );
  }
}

export async function runServeBench(opts: ServeBenchOptions): Promise<ServeBenchRun> {
  if (!(opts.requestRate > 0)) throw new Error(`--request-rate must be > 0 or inf, got ${opts.requestRate}`);
  const rng = new SeededRandom(opts.seed ^ 0x5eed);
  const limit = opts.maxConcurrency === null ? null : new Semaphore(opts.maxConcurrency);
  const started = performance.now();
  const pending: Promise<RequestResult>[] = [];
  for (const spec of opts.requests) {
    pending.push(
      (async () => {
        await limit?.acquire();
        try {
          const result = await sendStreamedRequest(opts.target, spec);
          opts.onRequestDone?.(result);
          return result;
        } finally {
          limit?.release();
        }
      })(),
    );
    if (Number.isFinite(opts.requestRate)) await sleep(rng.exponential(opts.requestRate) * 1000);
  }
  const results = await Promise.all(pending);
  const durationS = (performance.now() - started) / 1000;
  return { metrics: computeServeMetrics(results, durationS, opts.percentiles), results };
}
