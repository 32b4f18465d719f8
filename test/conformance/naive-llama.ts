/**
 * A deliberately naive fp64 Llama forward for a handful of tokens, written from the formulas (HF LlamaModel,
 * AutoAWQ GEMM layout as design.md states it) and sharing no code with any backend, so a backend's logits can be
 * checked against something that could disagree. Plain RoPE only; one sequence, positions 0..n-1.
 */
import { bf16ToF32, f16ToF32 } from "../../src/model/half.js";
import type { Checkpoint, ModelConfig, TensorData } from "../../src/model/types.js";

/** Nibble i of a packed int32 holds output column 8c + NIBBLE_COLUMN[i] (design.md). */
const NIBBLE_COLUMN = [0, 2, 4, 6, 1, 3, 5, 7];

function toNumbers(data: TensorData, dtype: string): Float64Array {
  if (dtype === "F16") return Float64Array.from(data as Uint16Array, f16ToF32);
  if (dtype === "BF16") return Float64Array.from(data as Uint16Array, bf16ToF32);
  return Float64Array.from(data as Float32Array);
}

async function floatTensor(ckpt: Checkpoint, name: string): Promise<Float64Array> {
  return toNumbers(await ckpt.read(name), ckpt.info(name).dtype);
}

/** y (rows, out) = x (rows, in) W, W from `module` (AWQ packed or dense (out, in)). */
async function linear(
  ckpt: Checkpoint,
  module: string,
  x: Float64Array[],
  inF: number,
  outF: number,
): Promise<Float64Array[]> {
  const y = x.map(() => new Float64Array(outF));
  if (ckpt.has(`${module}.qweight`)) {
    const qweight = (await ckpt.read(`${module}.qweight`)) as Int32Array; // (in, out/8)
    const qzeros = (await ckpt.read(`${module}.qzeros`)) as Int32Array; // (in/g, out/8)
    const scales = await floatTensor(ckpt, `${module}.scales`); // (in/g, out)
    const groupSize = inF / (scales.length / outF);
    const packs = outF / 8;
    for (let k = 0; k < inF; k++) {
      const g = Math.floor(k / groupSize);
      for (let c = 0; c < packs; c++) {
        const word = qweight[k * packs + c];
        const zword = qzeros[g * packs + c];
        for (let i = 0; i < 8; i++) {
          const n = 8 * c + NIBBLE_COLUMN[i];
          const w = (((word >>> (4 * i)) & 15) - ((zword >>> (4 * i)) & 15)) * scales[g * outF + n];
          for (let r = 0; r < x.length; r++) y[r][n] += x[r][k] * w;
        }
      }
    }
  } else {
    const w = await floatTensor(ckpt, `${module}.weight`); // (out, in)
    for (let r = 0; r < x.length; r++) {
      for (let n = 0; n < outF; n++) {
        let s = 0;
        for (let k = 0; k < inF; k++) s += x[r][k] * w[n * inF + k];
        y[r][n] = s;
      }
    }
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

function rope(vec: Float64Array, numHeads: number, headDim: number, pos: number, theta: number): void {
  const half = headDim / 2;
  for (let h = 0; h < numHeads; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos / theta ** ((2 * i) / headDim);
      const a = vec[h * headDim + i];
      const b = vec[h * headDim + half + i];
      vec[h * headDim + i] = a * Math.cos(angle) - b * Math.sin(angle);
      vec[h * headDim + half + i] = b * Math.cos(angle) + a * Math.sin(angle);
    }
  }
}

/** Logits (numTokens rows of vocab) of `tokenIds` at positions 0..n-1. */
export async function naiveLogits(
  ckpt: Checkpoint,
  config: ModelConfig,
  tokenIds: number[],
): Promise<Float64Array[]> {
  const { hiddenSize: hd, numHeads, numKvHeads, headDim, intermediateSize: inter, rmsNormEps: eps } = config;
  if (config.ropeScaling !== null) throw new Error("naiveLogits: plain RoPE only");
  const embed = await floatTensor(ckpt, "model.embed_tokens.weight");
  let hidden = tokenIds.map((id) => embed.slice(id * hd, (id + 1) * hd));
  const group = numHeads / numKvHeads;
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    const inNorm = await floatTensor(ckpt, `${p}.input_layernorm.weight`);
    const x = hidden.map((h) => rmsNorm(h, inNorm, eps));
    const q = await linear(ckpt, `${p}.self_attn.q_proj`, x, hd, numHeads * headDim);
    const k = await linear(ckpt, `${p}.self_attn.k_proj`, x, hd, numKvHeads * headDim);
    const v = await linear(ckpt, `${p}.self_attn.v_proj`, x, hd, numKvHeads * headDim);
    for (const [t, row] of q.entries()) rope(row, numHeads, headDim, t, config.ropeTheta);
    for (const [t, row] of k.entries()) rope(row, numKvHeads, headDim, t, config.ropeTheta);
    const attn = q.map((qRow, t) => {
      const out = new Float64Array(numHeads * headDim);
      for (let h = 0; h < numHeads; h++) {
        const g = Math.floor(h / group);
        const scores: number[] = [];
        for (let c = 0; c <= t; c++) {
          let s = 0;
          for (let i = 0; i < headDim; i++) s += qRow[h * headDim + i] * k[c][g * headDim + i];
          scores.push(s / Math.sqrt(headDim));
        }
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let c = 0; c <= t; c++) {
          for (let i = 0; i < headDim; i++) out[h * headDim + i] += (e[c] / sum) * v[c][g * headDim + i];
        }
      }
      return out;
    });
    const o = await linear(ckpt, `${p}.self_attn.o_proj`, attn, numHeads * headDim, hd);
    hidden = hidden.map((h, t) => h.map((val, i) => val + o[t][i]));
    const postNorm = await floatTensor(ckpt, `${p}.post_attention_layernorm.weight`);
    const n = hidden.map((h) => rmsNorm(h, postNorm, eps));
    const gate = await linear(ckpt, `${p}.mlp.gate_proj`, n, hd, inter);
    const up = await linear(ckpt, `${p}.mlp.up_proj`, n, hd, inter);
    const act = gate.map((g, t) => g.map((val, i) => (val / (1 + Math.exp(-val))) * up[t][i]));
    const down = await linear(ckpt, `${p}.mlp.down_proj`, act, inter, hd);
    hidden = hidden.map((h, t) => h.map((val, i) => val + down[t][i]));
  }
  const finalNorm = await floatTensor(ckpt, "model.norm.weight");
  const normed = hidden.map((h) => rmsNorm(h, finalNorm, eps));
  const headName = config.tieWordEmbeddings ? "model.embed_tokens" : "lm_head";
  return linear(ckpt, headName, normed, hd, config.vocabSize);
}
