import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { groupQuantize } from "../model/awq.js";
import { dampedGram, gptqQuantize, inverseCholeskyUpper } from "./gptq-round.js";
import { InputStatsAccumulator } from "./input-stats.js";
import { LayerRunner } from "./layer-runner.js";
import { rand } from "./random.test-helper.js";
import { chooseColumns, columnErrors } from "./rounding-choice.js";
import { tinyConfig } from "./tiny-config.test-helper.js";

/** Only the matmul of the runner is used here; any small layer shape will do. */
const config = tinyConfig();

describe("GPTQ rounding", () => {
  const runner = new LayerRunner(config, 64);
  after(() => runner.dispose());

  test("U is the upper Cholesky factor of H^-1: U^T U H = I", () => {
    const n = 5;
    const r = rand(3);
    const a = Float64Array.from({ length: n * n }, () => r());
    const h = new Float64Array(n * n); // A A^T + I: SPD
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = i === j ? 1 : 0;
        for (let k = 0; k < n; k++) s += a[i * n + k] * a[j * n + k];
        h[i * n + j] = s;
      }
    }
    const u = inverseCholeskyUpper(h, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < i; j++) assert.equal(u[i * n + j], 0);
      for (let j = 0; j < n; j++) {
        let s = 0; // (U^T U H)[i][j]
        for (let k = 0; k < n; k++) {
          let utu = 0;
          for (let m = 0; m < n; m++) utu += u[m * n + i] * u[m * n + k];
          s += utu * h[k * n + j];
        }
        assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-9, `(${i}, ${j}) = ${s}`);
      }
    }
  });

  test("on correlated inputs it has a lower output error than round-to-nearest, and the column choice keeps the best", () => {
    const inF = 128;
    const outF = 32;
    const rows = 64;
    const r = rand(11);
    const acc = new InputStatsAccumulator(runner, inF, rows);
    for (let b = 0; b < 4; b++) {
      const x = new Float32Array(rows * inF); // (rows, in): a shared factor makes channels correlated
      for (let t = 0; t < rows; t++) {
        const common = r() * 4;
        for (let k = 0; k < inF; k++) x[t * inF + k] = common * (k % 3) + r() * (1 + (k % 7));
      }
      acc.add(x);
    }
    const stats = acc.finish();
    const w = Float32Array.from({ length: inF * outF }, () => r()); // (in, out)
    const rtn = groupQuantize(w, inF, outF, 64);
    const gptq = gptqQuantize(w, inF, outF, 64, dampedGram(stats.gram, inF, null));
    const input = { w, inF, outF, groupSize: 64, gram: stats.gram, rowScale: null };
    const sum = (e: Float64Array) => e.reduce((a, b) => a + b, 0);
    const errRtn = sum(columnErrors(runner, input, rtn));
    const errGptq = sum(columnErrors(runner, input, gptq));
    assert.ok(errGptq < 0.8 * errRtn, `gptq ${errGptq} vs rtn ${errRtn}`);
    const { mixed, taken } = chooseColumns(runner, input, rtn, gptq, [[0, 4]]);
    assert.ok(taken > 0 && taken <= outF - 4);
    const perColumn = columnErrors(runner, input, mixed);
    const rtnColumns = columnErrors(runner, input, rtn);
    for (let n = 0; n < outF; n++) assert.ok(perColumn[n] <= rtnColumns[n] * (1 + 1e-6));
    for (let n = 0; n < 4; n++) assert.equal(perColumn[n], rtnColumns[n]);
  });
});
