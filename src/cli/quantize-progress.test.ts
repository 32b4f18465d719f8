import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { etaSeconds, formatDuration, quantizeReporter } from "./quantize-progress.js";

test("the ETA is the finished layers' mean times the layers left, less what the current one has spent", () => {
  assert.equal(etaSeconds([], 40, 5), null);
  assert.equal(etaSeconds([20, 16], 40, 0), 18 * 38);
  assert.equal(etaSeconds([20, 16], 40, 10), 18 * 38 - 10);
  assert.equal(etaSeconds([10, 10], 2, 0), 0);
  assert.equal(etaSeconds([10], 3, 50), 0, "never negative");
});

test("durations read as a person says them", () => {
  assert.deepEqual(
    [formatDuration(0.4), formatDuration(42), formatDuration(185), formatDuration(3720)],
    ["0 s", "42 s", "3m 05s", "1h 02m"],
  );
});

test("not a terminal: one line per finished layer, with elapsed time and ETA; nothing when quiet", () => {
  let written = "";
  const stream = Object.assign(
    new Writable({
      write(chunk, _e, done) {
        written += String(chunk);
        done();
      },
    }),
    { isTTY: false },
  );
  let clock = 0;
  const reporter = quantizeReporter({ stream, now: () => clock });
  for (let layer = 0; layer < 3; layer++) {
    reporter.progress({ layer, numLayers: 3, stage: "reading" });
    reporter.progress({ layer, numLayers: 3, stage: "q/k/v scales" });
    clock += 10_000;
    reporter.layerDone(layer, 10);
  }
  reporter.stop();
  assert.equal(
    written,
    "awq quantize: layer 1/3 done in 10.0 s (10 s elapsed, ETA 20 s)\n" +
      "awq quantize: layer 2/3 done in 10.0 s (20 s elapsed, ETA 10 s)\n" +
      "awq quantize: layer 3/3 done in 10.0 s (30 s elapsed)\n",
  );
  const quiet = quantizeReporter({ stream, quiet: true });
  written = "";
  quiet.progress({ layer: 0, numLayers: 1, stage: "reading" });
  quiet.layerDone(0, 1);
  assert.equal(written, "");
});
