/**
 * Progress bars for long CLI operations (loading weights, pulling, quantizing, perplexity): cli-progress
 * bars on stderr, and nothing at all when stderr is not a terminal (CI, logs, pipes) or the user passed
 * --quiet.
 *
 *   const bar = createProgressBar("quantize", { total: layers, unit: "layers", quiet: flags.quiet });
 *   bar.increment(); ... bar.stop();
 *   await LLM.load({ model, onLoadProgress: loadProgress({ quiet: flags.quiet }) });
 */
import cliProgress from "cli-progress";
import { formatBytes } from "../hub/errors.js";

export interface ProgressOptions {
  /** --quiet: never draw. */
  quiet?: boolean;
  /** Where bars go (default process.stderr). */
  stream?: NodeJS.WriteStream;
}

export interface BarOptions extends ProgressOptions {
  total: number;
  /** "bytes" shows sizes and a byte rate; anything else is a unit name shown after the counts. */
  unit?: "bytes" | string;
}

export interface ProgressBar {
  /** Sets the current value (and the total, when it becomes known later). */
  update(value: number, total?: number): void;
  increment(by?: number): void;
  /** Ends the bar and moves the cursor past it; safe to call twice. */
  stop(): void;
}

const SILENT: ProgressBar = { update() {}, increment() {}, stop() {} };

/** Whether bars would be drawn: the stream they go to is a terminal and --quiet was not given. */
export function progressVisible(opts: ProgressOptions = {}): boolean {
  return !opts.quiet && (opts.stream ?? process.stderr).isTTY === true;
}

export function createProgressBar(label: string, opts: BarOptions): ProgressBar {
  if (!progressVisible(opts)) return SILENT;
  const bytes = opts.unit === "bytes";
  const unit = bytes ? "" : ` ${opts.unit ?? ""}`.trimEnd();
  const bar = new cliProgress.SingleBar(
    {
      stream: opts.stream ?? process.stderr,
      format: bytes
        ? `${label} |{bar}| {percentage}% {done} / {all} {rate}`
        : `${label} |{bar}| {percentage}% {value}/{total}${unit} {rate}`,
      hideCursor: true,
      clearOnComplete: false,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  const startedAt = Date.now();
  let total = Math.max(0, opts.total);
  let current = 0;
  let stopped = false;
  const payload = (value: number) => {
    const seconds = (Date.now() - startedAt) / 1000;
    const perSecond = seconds > 0.3 ? value / seconds : 0;
    const rate = perSecond === 0 ? "" : bytes ? `${formatBytes(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
    return bytes ? { done: formatBytes(value), all: formatBytes(total), rate } : { rate };
  };
  bar.start(total, 0, payload(0));
  return {
    update(value, newTotal) {
      if (stopped) return;
      if (newTotal !== undefined && newTotal !== total) {
        total = newTotal;
        bar.setTotal(total);
      }
      current = value;
      bar.update(value, payload(value));
    },
    increment(by = 1) {
      this.update(current + by);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}

/**
 * An `onLoadProgress(loadedBytes, totalBytes)` callback (LLM.load) that draws a "loading weights" bar and
 * ends it when everything is loaded.
 */
export function loadProgress(opts: ProgressOptions = {}): (loadedBytes: number, totalBytes: number) => void {
  let bar: ProgressBar | null = null;
  return (loadedBytes, totalBytes) => {
    bar ??= createProgressBar("loading weights", { ...opts, total: totalBytes, unit: "bytes" });
    bar.update(loadedBytes, totalBytes);
    if (loadedBytes >= totalBytes) bar.stop();
  };
}
