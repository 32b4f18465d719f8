/**
 * AWQ_TRACE_STEPS=FILE: one JSON line per engine event, for reading a server's schedule after a benchmark (when the
 * requests of a burst arrived, which steps prefilled them, how long each step ran). Off unless the variable is set;
 * when set, every line is written synchronously (a few microseconds an event), so it is for diagnosis, not for
 * timing runs. Every engine of the process appends to the same file (data-parallel replicas interleave their lines).
 *
 * Lines (t: milliseconds since the trace was opened, performance.now()):
 *   {"t":12.345,"ev":"add","id":"cmpl-...","prompt":512}             a request entered the waiting queue
 *   {"t":13.001,"ev":"step","n":7,"chained":false,"seqs":16,"prefill":7680,"decode":1,"waiting":0}
 *   {"t":330.2,"ev":"done","n":7}                                     step 7's result reached the engine
 */
import { closeSync, openSync, writeSync } from "node:fs";

export interface StepCounts {
  seqs: number;
  /** Tokens of sequences still prefilling (numNewTokens of those not yet past their prompt). */
  prefill: number;
  /** Tokens of sequences decoding (one each). */
  decode: number;
  waiting: number;
}

export class StepTrace {
  private readonly t0 = performance.now();
  private fd: number | null;
  private steps = 0;

  constructor(path: string) {
    this.fd = openSync(path, "a");
  }

  add(requestId: string, promptTokens: number): void {
    this.write({ ev: "add", id: requestId, prompt: promptTokens });
  }

  /** Records a launched step; returns its number (for done()). */
  step(chained: boolean, counts: StepCounts): number {
    const n = ++this.steps;
    this.write({ ev: "step", n, chained, ...counts });
    return n;
  }

  done(n: number): void {
    this.write({ ev: "done", n });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private write(fields: Record<string, unknown>): void {
    if (this.fd === null) return;
    const t = Number((performance.now() - this.t0).toFixed(3));
    writeSync(this.fd, `${JSON.stringify({ t, ...fields })}\n`);
  }
}

/** The trace AWQ_TRACE_STEPS names, or null when it is unset or empty. */
export function stepTraceFromEnvironment(env: NodeJS.ProcessEnv = process.env): StepTrace | null {
  const path = env.AWQ_TRACE_STEPS;
  if (path === undefined || path === "") return null;
  try {
    return new StepTrace(path);
  } catch (err) {
    throw new Error(`AWQ_TRACE_STEPS=${path}: cannot open the trace file (${(err as Error).message})`);
  }
}
