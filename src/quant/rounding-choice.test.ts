/** Column errors match d^T G d computed directly; the choice takes only the columns the candidate improves. */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { groupQuantize } from "../model/awq.js";
import { dequantizeGroups } from "./group-math.js";
import { LayerRunner } from "./layer-runner.js";
import { rand } from "./random.test-helper.js";
import { chooseColumns, columnErrors } from "./rounding-choice.js";
import { tinyConfig } from "./tiny-config.test-helper.js";

const runner = new LayerRunner(tinyConfig(), 64);
after(() => runner.dispose());

const inF = 32;
const outF = 8;
const groupSize = 16;
const r = rand(4);
const x = Float64Array.from({ length: 20 * inF }, () => r()); // (rows, in)
const gram = new Float64Array(inF * inF); // (in, in) = X^T X
for (let t = 0; t < 20; t++)
  for (let a = 0; a < inF; a++)
    for (let b = 0; b < inF; b++) gram[a * inF + b] += x[t * inF + a]! * x[t * inF + b]!;
const w = Float32Array.from({ length: inF * outF }, () => r()); // (in, out)
const rowScale = Float32Array.from({ length: inF }, (_, k) => 1 + (k % 3) * 0.5); // (in)

test("columnErrors = d_n^T (G / s s^T) d_n for every column", () => {
  const input = { w, inF, outF, groupSize, gram, rowScale };
  const q = groupQuantize(w, inF, outF, groupSize);
  const got = columnErrors(runner, input, q);
  const deq = dequantizeGroups(q, inF, outF, groupSize);
  for (let n = 0; n < outF; n++) {
    let want = 0;
    for (let a = 0; a < inF; a++) {
      for (let b = 0; b < inF; b++) {
        const da = w[a * outF + n]! - deq[a * outF + n]!;
        const db = w[b * outF + n]! - deq[b * outF + n]!;
        want += (da * gram[a * inF + b]! * db) / (rowScale[a]! * rowScale[b]!);
      }
    }
    assert.ok(Math.abs(got[n]! - want) <= 1e-4 * Math.abs(want), `column ${n}: ${got[n]} vs ${want}`);
  }
});

test("chooseColumns: a candidate equal to the base takes nothing; a worse one is never taken", () => {
  const input = { w, inF, outF, groupSize, gram, rowScale: null };
  const base = groupQuantize(w, inF, outF, groupSize);
  assert.equal(chooseColumns(runner, input, base, base).taken, 0);
  // Clipping every bound to a tenth of the range is much worse on every column.
  const tight = Float32Array.from({ length: (inF / groupSize) * outF }, () => 0.05);
  const worse = groupQuantize(w, inF, outF, groupSize, { clip: tight });
  const { mixed, taken } = chooseColumns(runner, input, base, worse);
  assert.equal(taken, 0);
  assert.deepEqual(mixed.q, base.q);
  // The other way round every column improves, except those kept.
  assert.equal(chooseColumns(runner, input, worse, base, [[0, 3]]).taken, outF - 3);
});
