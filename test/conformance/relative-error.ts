/** Comparison of one backend's numbers with a reference's, shared by the conformance and GPU suites. */
import assert from "node:assert/strict";

/**
 * max |got - want| / max |want| over the entries; an entry the reference leaves NaN (no value there, such as the
 * last token's prompt logprob) must be NaN in `got` too and is not compared.
 */
export function maxRelativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length, `length ${got.length}, reference length ${want.length}`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) {
      assert.ok(Number.isNaN(got[i]), `entry ${i}: NaN expected, got ${got[i]}`);
      continue;
    }
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  return maxDiff / maxRef;
}
