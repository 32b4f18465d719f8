/** Download progress: one bar per file with bytes and speed on a terminal, nothing otherwise. */
import cliProgress from "cli-progress";
import { formatBytes } from "./errors.js";

export interface FileProgress {
  file: string;
  /** Bytes of this file present so far, a resumed prefix included. */
  downloadedBytes: number;
  totalBytes: number;
}

export interface ProgressReporter {
  update(event: FileProgress): void;
  /** A line for the user (e.g. waiting for another process's download). */
  note(text: string): void;
  stop(): void;
}

interface BarState {
  bar: cliProgress.SingleBar;
  startedAt: number;
  startBytes: number;
}

/** Bars on stderr when it is a terminal; a silent reporter otherwise. */
export function createProgressReporter(opts: { quiet?: boolean } = {}): ProgressReporter {
  const stream = process.stderr;
  if (opts.quiet || !stream.isTTY) return { update() {}, note() {}, stop() {} };
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      format: "{file} |{bar}| {percentage}% {bytes} / {total_bytes} {speed}",
      hideCursor: true,
      autopadding: true,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, BarState>();
  const nameWidth = 32;
  return {
    update({ file, downloadedBytes, totalBytes }) {
      let state = bars.get(file);
      const name = file.length > nameWidth ? `…${file.slice(-(nameWidth - 1))}` : file.padEnd(nameWidth);
      if (!state) {
        const bar = multibar.create(totalBytes, downloadedBytes, { file: name });
        state = { bar, startedAt: Date.now(), startBytes: downloadedBytes };
        bars.set(file, state);
      }
      const seconds = (Date.now() - state.startedAt) / 1000;
      const speed = seconds > 0.2 ? `${formatBytes((downloadedBytes - state.startBytes) / seconds)}/s` : "";
      state.bar.update(downloadedBytes, {
        file: name,
        bytes: formatBytes(downloadedBytes),
        total_bytes: formatBytes(totalBytes),
        speed,
      });
    },
    note(text) {
      multibar.log(`${text}\n`);
    },
    stop() {
      multibar.stop();
    },
  };
}
