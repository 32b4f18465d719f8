/**
 * Progress of `awq quantize`: a bar on a terminal, one line per finished layer otherwise (logs, CI, pipes), both
 * with an ETA measured from the layers already done (layers of one model cost about the same; the first one
 * also embeds the calibration text, so the estimate starts once a layer has finished).
 */
import cliProgress from "cli-progress";
import type { QuantizeProgress } from "../quant/quantize.js";

/** "42 s", "3m 05s", "1h 02m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * Seconds left: the mean time of the finished layers times the layers not finished, less the time already
 * spent on the current one; null before any layer has finished.
 */
export function etaSeconds(
  layerSeconds: number[],
  numLayers: number,
  currentLayerElapsed: number,
): number | null {
  if (layerSeconds.length === 0) return null;
  const mean = layerSeconds.reduce((a, b) => a + b, 0) / layerSeconds.length;
  return Math.max(0, mean * (numLayers - layerSeconds.length) - currentLayerElapsed);
}

export interface QuantizeReporter {
  progress(event: QuantizeProgress): void;
  layerDone(layer: number, seconds: number): void;
  stop(): void;
}

export interface ReporterOptions {
  quiet?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

export function quantizeReporter(opts: ReporterOptions = {}): QuantizeReporter {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? (() => performance.now());
  if (opts.quiet) return { progress() {}, layerDone() {}, stop() {} };
  const started = now();
  const done: number[] = [];
  let layerStarted = started;
  let numLayers = 0;
  const eta = (): string => {
    const left = etaSeconds(done, numLayers, (now() - layerStarted) / 1000);
    return left === null ? "after the first layer" : formatDuration(left);
  };

  if (stream.isTTY !== true) {
    return {
      progress(e) {
        numLayers = e.numLayers;
        if (e.stage === "reading") layerStarted = now();
      },
      layerDone(layer, seconds) {
        done.push(seconds);
        layerStarted = now(); // the next layer starts now: nothing of it is spent yet
        const elapsed = formatDuration((now() - started) / 1000);
        const left = done.length < numLayers ? `, ETA ${eta()}` : "";
        stream.write(
          `awq quantize: layer ${layer + 1}/${numLayers} done in ${seconds.toFixed(1)} s (${elapsed} elapsed${left})\n`,
        );
      },
      stop() {},
    };
  }

  const bar = new cliProgress.SingleBar(
    {
      format: "quantizing |{bar}| layer {layer}/{total} {stage} | {elapsed} elapsed, ETA {eta}",
      hideCursor: true,
      stream,
    },
    cliProgress.Presets.shades_classic,
  );
  let barStarted = false;
  let stopped = false;
  const payload = (stage: string, layer: number) => ({
    stage,
    layer: Math.min(layer + 1, numLayers),
    elapsed: formatDuration((now() - started) / 1000),
    eta: eta(),
  });
  return {
    progress(e) {
      numLayers = e.numLayers;
      if (e.stage === "reading") layerStarted = now();
      if (!barStarted) {
        bar.start(e.numLayers, 0, payload(e.stage, e.layer));
        barStarted = true;
      }
      bar.update(done.length, payload(e.stage, e.layer));
    },
    layerDone(layer, seconds) {
      done.push(seconds);
      layerStarted = now();
      bar.update(done.length, payload("done", layer));
    },
    stop() {
      if (barStarted && !stopped) bar.stop();
      stopped = true;
    },
  };
}
