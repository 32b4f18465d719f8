/**
 * AWQ for one decoder layer: given the layer's fp16 weights and its inputs on the calibration blocks, choose
 * per-channel scales and clipping ranges, fold the scales into the op before, and quantize every linear.
 *
 * Stages, in the layer's order, each starting from the state the earlier stages left (earlier linears already
 * in their final quantized form, later ones still fp16), so each stage's search sees and can offset the
 * rounding error of the ones before it:
 *   qkv     q/k/v share rmsnorm(x): scale searched, folded into input_layernorm;
 *   o       input = attention output: scale searched and folded into v_proj's output columns only when every
 *           query head has its own v head (numKvHeads == numHeads, as AutoAWQ); with GQA plain (s = 1);
 *   gateUp  gate/up share rmsnorm(h): folded into post_attention_layernorm;
 *   down    input = silu(gate) * up: folded into up_proj's output columns.
 * Each stage: capture the inputs' statistics on every calibration block (one layer pass), search the scale
 * by the layer output's error on a few blocks (scale-search.ts), search clipping per group (clip-search.ts),
 * quantize. With `gptq` on (off by default: on the demo it cost 2.4x the time and gave a worse perplexity,
 * docs/benchmarks.md "The default: no GPTQ"), the rounding is then refined by GPTQ (gptq-round.ts) in every
 * output column where that lowers the calibration error (not q_proj / k_proj: like clipping them, it lowers
 * their own output error but raised perplexity on the demo), and the scale candidates are scored with that
 * same final rounding (`searchWithGptq`), since the best scale for GPTQ rounding is not the best for plain
 * rounding. Measured effect on the demo model: docs/benchmarks.md, "Quantization".
 *
 * The layer's output passed on to the next layer is the QUANTIZED layer's output (the option `propagate`
 * can pass the fp16 output instead, as AutoAWQ does): the next layer is then calibrated on the inputs it will
 * really see at inference, errors of earlier layers included, and its search targets the fp16 layer applied
 * to those inputs. On the demo model this gave lower perplexity than passing fp16 outputs (docs/benchmarks.md).
 *
 * Every computation goes through QuantMath (quant-math.ts): the same search runs on the CPU (cpu-quant-math.ts,
 * the reference) or on the GPU (cuda-quant-math.ts). This file only holds handles and small host vectors
 * (norms, scales, per-channel means), and releases each handle as soon as it is no longer needed, since the
 * CUDA implementation's handles are GPU memory (a Llama-13B layer's weights and activations are gigabytes).
 */
import type { GroupQuantized } from "../model/awq.js";
import { foldIntoNorm } from "./group-math.js";
import type { DenseLayer } from "./layer-runner.js";
import type {
  FusedLinear,
  InputStats,
  LayerNorms,
  LayerPart,
  QuantMath,
  WeightErrorInput,
} from "./quant-math.js";
import { scaleFamilies, searchScales } from "./scale-search.js";

export type QuantMethod = "awq" | "rtn";

export interface LayerQuantOptions {
  groupSize: number;
  method: QuantMethod;
  /** Calibration blocks scoring each scale candidate (spread evenly over all blocks). */
  searchBlocks: number;
  /** Also clip q_proj / k_proj (AutoAWQ does not). */
  clipQk: boolean;
  /**
   * After the clip search, also round by GPTQ (gptq-round.ts) and keep, per output column, whichever rounding
   * has the lower calibration error (q_proj / k_proj stay with plain clipped rounding, as for clipping).
   * Only for linears at most `math.gptqMaxInFeatures` wide.
   */
  gptq: boolean;
  /** Score scale candidates with the final rounding (GPTQ where it wins) instead of round-to-nearest. */
  searchWithGptq: boolean;
  /** Also try GPTQ with the clip search's ranges (as a share of each group's max), per column where better. */
  gptqClip: boolean;
  /** Let GPTQ round q_proj / k_proj too (by their own output error). */
  gptqQk: boolean;
  /** Which output the next layer is calibrated on (see the file comment). */
  propagate: "quantized" | "fp16";
}

export const DEFAULT_LAYER_QUANT_OPTIONS: Omit<LayerQuantOptions, "groupSize"> = {
  method: "awq",
  searchBlocks: 2,
  clipQk: false,
  gptq: false,
  gptqQk: false,
  gptqClip: false,
  searchWithGptq: true,
  propagate: "quantized",
};

/** A quantized layer on the host: folded norms (f16-exact) and the four fused linears (see quant-math.ts). */
export interface QuantizedLayer {
  inputNorm: Float32Array; // (hidden)
  postAttentionNorm: Float32Array; // (hidden)
  linears: Record<FusedLinear, GroupQuantized>;
  /** One line per stage: the chosen scale and the search losses, for the log. */
  notes: string[];
}

/** A layer's fp16 weights as an implementation holds them: norms on the host, the fused linears as handles. */
export interface LayerWeights<W> {
  inputNorm: Float32Array; // (hidden)
  postAttentionNorm: Float32Array; // (hidden)
  linears: Record<FusedLinear, W>; // each (in, out)
}

const FUSED_ORDER: readonly FusedLinear[] = ["qkv", "o", "gateUp", "down"];

/** Hands a layer read from the checkpoint to `math` (the host arrays can be dropped afterwards). */
export async function uploadLayer<W, Q, A, G, C>(
  math: QuantMath<W, Q, A, G, C>,
  fp: DenseLayer,
): Promise<LayerWeights<W>> {
  const linears = {} as Record<FusedLinear, W>;
  for (const which of FUSED_ORDER) linears[which] = await math.uploadWeight(which, fp[which]);
  return { inputNorm: fp.inputNorm, postAttentionNorm: fp.postAttentionNorm, linears };
}

/**
 * Round-to-nearest of every linear, no scales or clipping: the baseline, through the same writer. Takes
 * ownership of `layer`'s handles (released here).
 */
export async function quantizeLayerRtn<W, Q, A, G, C>(
  math: QuantMath<W, Q, A, G, C>,
  layer: LayerWeights<W>,
  groupSize: number,
): Promise<QuantizedLayer> {
  const linears = {} as Record<FusedLinear, GroupQuantized>;
  for (const which of FUSED_ORDER) {
    const q = math.groupQuantize(layer.linears[which], groupSize);
    math.release(layer.linears[which]);
    linears[which] = await math.downloadQuantized(q);
    math.release(q);
  }
  return { inputNorm: layer.inputNorm, postAttentionNorm: layer.postAttentionNorm, linears, notes: ["rtn"] };
}

/**
 * Like pseudoQuantizeScaled, but rounding as the final quantization does with GPTQ on: per output column the
 * better of round-to-nearest and GPTQ (outside `keepRtn`), then the rows divided back by s. A new handle.
 */
async function pseudoQuantizeGptq<W, Q, A, G, C>(
  math: QuantMath<W, Q, A, G, C>,
  w: W, // (in, out)
  s: Float32Array, // (in)
  g: number,
  gram: G, // (in, in)
  keepRtn: readonly [number, number][],
): Promise<W> {
  const scaled = math.scaleRows(w, s); // (in, out)
  const rtn = math.groupQuantize(scaled, g);
  const choice: WeightErrorInput<W, G> = { w: scaled, groupSize: g, gram, rowScale: s };
  const refined = math.gptqQuantize(choice);
  const { mixed } = await math.chooseColumns(choice, rtn, refined, keepRtn);
  const deq = math.dequantize(mixed); // (in, out)
  const out = math.scaleRows(deq, s, true); // (in, out)
  math.release(scaled, rtn, refined, mixed, deq);
  return out;
}

/**
 * Quantizes one layer. `x` (numBlocks * seqlen, hidden) holds its inputs and receives its outputs (see the
 * file comment for which output). Takes ownership of `fp`'s handles: each is released once its stage is done.
 */
export async function quantizeLayerAwq<W, Q, A, G, C>(
  math: QuantMath<W, Q, A, G, C>,
  fp: LayerWeights<W>,
  x: A, // (numBlocks * seqlen, hidden), replaced by the layer's output
  opts: LayerQuantOptions,
  onStage?: (stage: string) => void,
): Promise<QuantizedLayer> {
  const { numHeads, numKvHeads, headDim, intermediateSize: inter } = math.dims;
  const g = opts.groupSize;
  const numBlocks = math.blockCount(x);
  const searchCount = Math.min(opts.searchBlocks, numBlocks);
  const searchIdx = Array.from({ length: searchCount }, (_, i) => Math.floor((i * numBlocks) / searchCount));

  // The current layer: norms and effective (dequantized where final) weights, and the final quantized linears.
  const state: Record<FusedLinear, W> = { ...fp.linears };
  let inputNorm = fp.inputNorm; // (hidden)
  let postAttentionNorm = fp.postAttentionNorm; // (hidden)
  const final = {} as Record<FusedLinear, Q>;
  const notes: string[] = [];
  const norms = (): LayerNorms => ({ inputNorm, postAttentionNorm });
  /** Every linear as in `state`, except `which` replaced by `w`. */
  const setLinears = (which?: FusedLinear, w?: W): void => {
    for (const other of FUSED_ORDER)
      math.setLinear(other, other === which && w !== undefined ? w : state[other]);
  };

  /**
   * One pass over every block of `h` with the current state (the whole layer, or one half of it), collecting
   * the inputs of `which`; `h` is updated in place.
   */
  const capture = async (which: FusedLinear, h: A, part: LayerPart): Promise<InputStats<G>> => {
    setLinears();
    const stats = await math.forward(h, norms(), part, which);
    if (stats === undefined) throw new Error(`quantizer (${math.name}): no input statistics for ${which}`);
    return stats;
  };

  onStage?.("fp16 pass");
  let target: A | null = math.cloneActivations(x); // (numBlocks * seqlen, hidden) the fp16 layer's output
  const qkvStats = await capture("qkv", target, "layer");
  let searchIn: A | null = math.cloneActivations(x, searchIdx); // (searchCount * seqlen, hidden)
  const searchTarget = math.cloneActivations(target, searchIdx); // (searchCount * seqlen, hidden)
  if (opts.propagate !== "fp16") {
    math.release(target);
    target = null;
  }
  // After the attention half is final: the residual stream entering the MLP half, on the search blocks.
  let searchMlpIn: A | null = null; // (searchCount * seqlen, hidden)

  /**
   * Layer-output MSE on the search blocks with `which` replaced by `w`. Once the attention half is final, only
   * the MLP half runs (from the saved residual stream): the same output, a third of the work.
   */
  const layerLoss = async (which: FusedLinear, w: W): Promise<number> => {
    setLinears(which, w);
    const start = searchMlpIn ?? searchIn;
    if (start === null) throw new Error("quantizer: no search blocks");
    const h = math.cloneActivations(start);
    try {
      await math.forward(h, norms(), searchMlpIn === null ? "layer" : "mlp");
      return await math.meanSquaredError(h, searchTarget);
    } finally {
      math.release(h);
    }
  };

  /** Scale search + fold + clip + quantize of one stage. `foldInto` applies 1/s to the op before. */
  const stage = async (
    which: FusedLinear,
    stats: InputStats<G>,
    searchScale: boolean,
    foldInto: (s: Float32Array) => void,
    noClipColumns: [number, number][],
  ): Promise<void> => {
    const inF = math.inFeatures(which);
    const outF = math.outFeatures(which);
    const w = fp.linears[which]; // (in, out)
    const gptq = opts.gptq && inF <= math.gptqMaxInFeatures;
    const keep = opts.gptqQk ? [] : noClipColumns;
    let s: Float32Array | null = null; // (in)
    if (searchScale) {
      onStage?.(`${which} scales`);
      const wMean = await math.weightSalience(w, g);
      const result = await searchScales(scaleFamilies(stats.absMean, wMean), inF, async (cand) => {
        const candidate =
          gptq && opts.searchWithGptq
            ? await pseudoQuantizeGptq(math, w, cand, g, stats.gram, keep)
            : math.pseudoQuantizeScaled(w, cand, g);
        try {
          return await layerLoss(which, candidate);
        } finally {
          math.release(candidate);
        }
      });
      notes.push(
        `${which}: ${result.label} (layer mse ${result.loss.toExponential(3)}, s=1 ${result.identityLoss.toExponential(3)})`,
      );
      s = result.scales;
    }
    if (s !== null) foldInto(s);
    const scaled = s === null ? w : math.scaleRows(w, s); // (in, out)
    onStage?.(`${which} clip`);
    const choice: WeightErrorInput<W, G> = { w: scaled, groupSize: g, gram: stats.gram, rowScale: s };
    const clip = math.searchClip(choice, noClipColumns); // (in/g, out)
    final[which] = math.groupQuantize(scaled, g, clip);
    if (gptq) {
      onStage?.(`${which} gptq`);
      const refined = math.gptqQuantize(choice);
      const plain = await math.chooseColumns(choice, final[which], refined, keep);
      math.release(final[which], refined);
      final[which] = plain.mixed;
      let clipped = 0;
      if (opts.gptqClip) {
        const ratio = math.clipRatios(scaled, clip, g); // (in/g, out)
        const refinedClipped = math.gptqQuantize(choice, ratio);
        const withClip = await math.chooseColumns(choice, final[which], refinedClipped, keep);
        math.release(final[which], refinedClipped, ratio);
        final[which] = withClip.mixed;
        clipped = withClip.taken;
      }
      notes.push(
        `${which}: gptq rounding in ${plain.taken}/${outF} columns` +
          (opts.gptqClip ? `, then gptq with clipping in ${clipped}` : ""),
      );
    }
    math.release(clip, stats.gram);
    if (scaled !== w) math.release(scaled);
    math.release(w); // the fp16 weights: state[which] was this handle until now
    state[which] = math.dequantize(final[which]);
  };

  const qDim = numHeads * headDim;
  const kvDim = numKvHeads * headDim;
  await stage(
    "qkv",
    qkvStats,
    true,
    (s) => {
      inputNorm = foldIntoNorm(inputNorm, s);
    },
    opts.clipQk ? [] : [[0, qDim + kvDim]],
  );
  onStage?.("o inputs");
  const h = math.cloneActivations(x); // (numBlocks * seqlen, hidden) becomes the residual stream after attention
  const oStats = await capture("o", h, "attention");
  await stage(
    "o",
    oStats,
    numKvHeads === numHeads,
    (s) => {
      math.divideQuantizedColumns(final.qkv, s, qDim + kvDim);
      math.release(state.qkv);
      state.qkv = math.dequantize(final.qkv);
    },
    [],
  );
  onStage?.("gate/up inputs");
  math.copyActivations(h, x);
  setLinears();
  await math.forward(h, norms(), "attention"); // the attention half is final now
  searchMlpIn = math.cloneActivations(h, searchIdx);
  math.release(searchIn);
  searchIn = null;
  // An MLP linear's input statistics: the MLP half run on a scratch copy of h (h itself stays the attention output).
  const captureMlp = async (which: "gateUp" | "down"): Promise<InputStats<G>> => {
    const scratch = math.cloneActivations(h); // (numBlocks * seqlen, hidden)
    try {
      return await capture(which, scratch, "mlp");
    } finally {
      math.release(scratch);
    }
  };
  const gateUpStats = await captureMlp("gateUp");
  await stage(
    "gateUp",
    gateUpStats,
    true,
    (s) => {
      postAttentionNorm = foldIntoNorm(postAttentionNorm, s);
    },
    [],
  );
  onStage?.("down inputs");
  const downStats = await captureMlp("down");
  await stage(
    "down",
    downStats,
    true,
    (s) => {
      math.divideQuantizedColumns(final.gateUp, s, inter);
      math.release(state.gateUp);
      state.gateUp = math.dequantize(final.gateUp);
    },
    [],
  );
  math.release(searchMlpIn, searchTarget);

  onStage?.("output");
  if (target !== null) {
    math.copyActivations(x, target);
  } else {
    setLinears();
    await math.forward(h, norms(), "mlp");
    math.copyActivations(x, h);
  }
  math.release(target, h);
  const linears = {} as Record<FusedLinear, GroupQuantized>;
  for (const which of FUSED_ORDER) {
    linears[which] = await math.downloadQuantized(final[which]);
    math.release(final[which], state[which]);
  }
  return { inputNorm, postAttentionNorm, linears, notes };
}
