/** The clipping search: bounds within the group range, never worse than no clipping, protected columns kept. */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { groupQuantize } from "../model/awq.js";
import { CLIP_SHRINKS, searchClip } from "./clip-search.js";
import { InputStatsAccumulator } from "./input-stats.js";
import { LayerRunner } from "./layer-runner.js";
import { rand } from "./random.test-helper.js";
import { columnErrors } from "./rounding-choice.js";
import { tinyConfig } from "./tiny-config.test-helper.js";

const runner = new LayerRunner(tinyConfig(), 64);
after(() => runner.dispose());

test("clip bounds lie in the shrink grid of each group's range and never raise the calibration error", () => {
  const inF = 64;
  const outF = 16;
  const groupSize = 32;
  const r = rand(21);
  const acc = new InputStatsAccumulator(runner, inF, 32);
  acc.add(Float32Array.from({ length: 32 * inF }, () => r())); // (rows, in)
  const { gram } = acc.finish();
  // Heavy-tailed weights (an outlier per column) make clipping pay off somewhere.
  const w = Float32Array.from({ length: inF * outF }, (_, i) => r() * (i % 37 === 0 ? 8 : 1)); // (in, out)
  const input = {
    w,
    inF,
    outF,
    groupSize,
    gram,
    rowScale: null,
    noClipColumns: [[0, 2]] as [number, number][],
  };
  const bound = searchClip(runner, input); // (in/g, out)
  for (let g = 0; g < inF / groupSize; g++) {
    for (let n = 0; n < outF; n++) {
      let max = 0;
      for (let k = g * groupSize; k < (g + 1) * groupSize; k++)
        max = Math.max(max, Math.abs(w[k * outF + n]!));
      const b = bound[g * outF + n]!;
      if (n < 2) assert.equal(b, Math.fround(max), `protected column ${n}`);
      else
        assert.ok(
          CLIP_SHRINKS.some((s) => Math.abs(b - Math.fround(max * (1 - s))) < 1e-6),
          `bound ${b}`,
        );
    }
  }
  const errors = (q: ReturnType<typeof groupQuantize>) => columnErrors(runner, input, q);
  const clipped = errors(groupQuantize(w, inF, outF, groupSize, { clip: bound }));
  const plain = errors(groupQuantize(w, inF, outF, groupSize));
  const sum = (e: Float64Array) => e.reduce((a, b) => a + b, 0);
  assert.ok(sum(clipped) <= sum(plain) * (1 + 1e-6), `clipped ${sum(clipped)} vs plain ${sum(plain)}`);
});
