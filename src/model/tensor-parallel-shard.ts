/**
 * Cuts one rank's shard out of a linear's checkpoint tensors, as the plan (tensor-parallel-plan.ts) assigns it:
 * the loaders of every backend slice with these, so all ranks agree on the bytes they hold.
 *
 * Dense (torch nn.Linear) weight (out, in): column-parallel keeps rows range of `out`, row-parallel keeps
 * columns range of `in`. AWQ GEMM (qweight (in, out/8), qzeros (in/g, out/8), scales (in/g, out)): a column
 * range cuts whole packed words (8 columns each, nibble order intact); a row range cuts whole groups of g rows.
 */
import type { IndexRange, LinearSplit } from "./tensor-parallel-plan.js";

type Matrix = Int32Array | Uint16Array | Float32Array;

/** The block rows x cols of a row-major (numRows, numCols) matrix. */
export function sliceMatrix<T extends Matrix>(
  src: T, // (numRows, numCols)
  numRows: number,
  numCols: number,
  rows: IndexRange,
  cols: IndexRange,
): T {
  if (src.length !== numRows * numCols)
    throw new Error(`sliceMatrix: ${src.length} elements are not (${numRows}, ${numCols})`);
  if (!(rows.start >= 0 && rows.start <= rows.end && rows.end <= numRows))
    throw new Error(`sliceMatrix: rows ${rows.start}..${rows.end} are outside 0..${numRows}`);
  if (!(cols.start >= 0 && cols.start <= cols.end && cols.end <= numCols))
    throw new Error(`sliceMatrix: columns ${cols.start}..${cols.end} are outside 0..${numCols}`);
  const width = cols.end - cols.start;
  const out = new (src.constructor as new (n: number) => T)((rows.end - rows.start) * width);
  for (let r = rows.start; r < rows.end; r++) {
    const from = r * numCols + cols.start;
    out.set(src.subarray(from, from + width) as T, (r - rows.start) * width);
  }
  return out;
}

const all = (n: number): IndexRange => ({ start: 0, end: n });

/** A dense linear's shard: weight (out, in) -> (out', in'). */
export function sliceDenseLinear(
  weight: Float32Array, // (out, in)
  inFeatures: number,
  outFeatures: number,
  split: LinearSplit,
  range: IndexRange,
): { weight: Float32Array; inFeatures: number; outFeatures: number } {
  if (split === "column") {
    return {
      weight: sliceMatrix(weight, outFeatures, inFeatures, range, all(inFeatures)),
      inFeatures,
      outFeatures: range.end - range.start,
    };
  }
  return {
    weight: sliceMatrix(weight, outFeatures, inFeatures, all(outFeatures), range),
    inFeatures: range.end - range.start,
    outFeatures,
  };
}

export interface AwqShardTensors {
  qweight: Int32Array; // (in, out / 8)
  qzeros: Int32Array; // (in / groupSize, out / 8)
  scales: Uint16Array; // (in / groupSize, out) f16 bits
}

/** An AWQ GEMM linear's shard; throws when the range would cut a packed word or a quantization group. */
export function sliceAwqLinear(
  tensors: AwqShardTensors,
  inFeatures: number,
  outFeatures: number,
  groupSize: number,
  split: LinearSplit,
  range: IndexRange,
  name = "linear",
): AwqShardTensors & { inFeatures: number; outFeatures: number } {
  const words = outFeatures / 8;
  const groups = inFeatures / groupSize;
  if (split === "column") {
    if (range.start % 8 !== 0 || range.end % 8 !== 0)
      throw new Error(
        `${name}: AWQ columns ${range.start}..${range.end} cut a packed word of 8 columns; the split needs multiples of 8`,
      );
    const wordRange = { start: range.start / 8, end: range.end / 8 };
    return {
      qweight: sliceMatrix(tensors.qweight, inFeatures, words, all(inFeatures), wordRange),
      qzeros: sliceMatrix(tensors.qzeros, groups, words, all(groups), wordRange),
      scales: sliceMatrix(tensors.scales, groups, outFeatures, all(groups), range),
      inFeatures,
      outFeatures: range.end - range.start,
    };
  }
  if (range.start % groupSize !== 0 || range.end % groupSize !== 0)
    throw new Error(
      `${name}: AWQ input rows ${range.start}..${range.end} cut a quantization group of ${groupSize} rows`,
    );
  const groupRange = { start: range.start / groupSize, end: range.end / groupSize };
  return {
    qweight: sliceMatrix(tensors.qweight, inFeatures, words, range, all(words)),
    qzeros: sliceMatrix(tensors.qzeros, groups, words, groupRange, all(words)),
    scales: sliceMatrix(tensors.scales, groups, outFeatures, groupRange, all(outFeatures)),
    inFeatures: range.end - range.start,
    outFeatures,
  };
}
