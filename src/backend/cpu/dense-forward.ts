/**
 * The pieces to run decoder layers on dense activations of one block of tokens (causal attention over the
 * block itself, no KV cache): what the AWQ quantizer needs to replay calibration samples layer by layer. Same
 * kernels and the same runDecoderLayer as the backend's paged forward; nothing here is a second model.
 *
 *   const model = backend.loadedModel!;                        // a loaded CpuBackend
 *   const hidden = model.embed(tokenIds);                       // (rows, hidden)
 *   const ctx = denseContext(model.config, rows);   // then, for each layer i:
 *   runDecoderLayer(model.scratch, model.dims, model.weights.layers[i], hidden, rows, ctx.rope, ctx.attention, observe);
 */
import type { ModelConfig } from "../../model/types.js";
import { attendSequence, denseKvSource, reserveAttention } from "./attention.js";
import { layerDims, ropeSpec } from "./cpu-model.js";
import type { AttentionFn, LayerDims, TokenRope } from "./decoder-layer.js";
import { ropeFrequenciesFor } from "./ops.js";

/** Causal self-attention over `rows` tokens at positions 0..rows-1 of one sequence. */
export function denseCausalAttention(dims: LayerDims, rows: number, positions: Int32Array): AttentionFn {
  const qDim = dims.numHeads * dims.headDim;
  const kvDim = dims.numKvHeads * dims.headDim;
  return {
    reserve: (scratch) => reserveAttention(scratch, dims, rows, rows),
    run: (scratch, qkv, qkvWidth, out) => {
      const source = denseKvSource(qkv, qkv, 0, qkvWidth, dims.headDim);
      attendSequence(
        scratch,
        dims,
        {
          q: qkv,
          qStride: qkvWidth,
          qColumn: 0,
          firstRow: 0,
          numRows: rows,
          positions,
          contextLen: rows,
          out,
          outStride: qDim,
          keyColumn: qDim,
          valueColumn: qDim + kvDim,
        },
        source,
      );
    },
  };
}

/** RoPE inputs for positions 0..rows-1 of one sequence (dynamic NTK from its length). */
export function denseRope(config: ModelConfig, rows: number): { positions: Int32Array; rope: TokenRope } {
  const positions = Int32Array.from({ length: rows }, (_, i) => i); // (rows)
  const freqs = ropeFrequenciesFor(ropeSpec(config), rows);
  const scaling = config.ropeScaling;
  return {
    positions,
    rope: { positions, invFreq: () => freqs, linearFactor: scaling?.type === "linear" ? scaling.factor : 1 },
  };
}

/** Everything runDecoderLayer needs besides weights for one dense block of `rows` tokens. */
export function denseContext(config: ModelConfig, rows: number): { rope: TokenRope; attention: AttentionFn } {
  const { positions, rope } = denseRope(config, rows);
  return { rope, attention: denseCausalAttention(layerDims(config), rows, positions) };
}
