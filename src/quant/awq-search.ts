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
 * quantize. With `gptq` on (the default), the rounding is then refined by GPTQ (gptq-round.ts) in every
 * output column where that lowers the calibration error (not q_proj / k_proj: like clipping them, it lowers
 * their own output error but raised perplexity on the demo), and the scale candidates are scored with that
 * same final rounding (`searchWithGptq`), since the best scale for GPTQ rounding is not the best for plain
 * rounding. Measured effect on the demo model: docs/benchmarks.md, "Quantization".
 *
 * The layer's output passed on to the next layer is the QUANTIZED layer's output (the option `propagate`
 * can pass the fp16 output instead, as AutoAWQ does): the next layer is then calibrated on the inputs it will
 * really see at inference, errors of earlier layers included, and its search targets the fp16 layer applied
 * to those inputs. On the demo model this gave lower perplexity than passing fp16 outputs (docs/benchmarks.md).
 */
import { type GroupQuantized, groupQuantize } from "../model/awq.js";
import { searchClip } from "./clip-search.js";
import { dampedGram, GPTQ_MAX_IN_FEATURES, gptqQuantize } from "./gptq-round.js";
import {
  dequantizeGroups,
  divideQuantizedColumns,
  foldIntoNorm,
  pseudoQuantizeScaled,
  scaleRows,
} from "./group-math.js";
import { type InputStats, InputStatsAccumulator } from "./input-stats.js";
import type { DenseLayer, FusedLinear, LayerRunner } from "./layer-runner.js";
import { chooseColumns } from "./rounding-choice.js";
import { scaleFamilies, searchScales, weightSalience } from "./scale-search.js";

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
  gptq: true,
  gptqQk: false,
  gptqClip: false,
  searchWithGptq: true,
  propagate: "quantized",
};

/** A quantized layer: folded norms (f16-exact) and the four fused linears (see layer-runner.ts). */
export interface QuantizedLayer {
  inputNorm: Float32Array; // (hidden)
  postAttentionNorm: Float32Array; // (hidden)
  linears: Record<FusedLinear, GroupQuantized>;
  /** One line per stage: the chosen scale and the search losses, for the log. */
  notes: string[];
}

const FUSED_ORDER: readonly FusedLinear[] = ["qkv", "o", "gateUp", "down"];

/** Round-to-nearest of every linear, no scales or clipping: the baseline, through the same writer. */
export function quantizeLayerRtn(runner: LayerRunner, layer: DenseLayer, groupSize: number): QuantizedLayer {
  const linears = {} as Record<FusedLinear, GroupQuantized>;
  for (const which of FUSED_ORDER) {
    const { inF, outF } = shapeOf(runner, which);
    linears[which] = groupQuantize(layer[which], inF, outF, groupSize);
  }
  return { inputNorm: layer.inputNorm, postAttentionNorm: layer.postAttentionNorm, linears, notes: ["rtn"] };
}

function shapeOf(runner: LayerRunner, which: FusedLinear): { inF: number; outF: number } {
  const { hiddenSize: hd, numHeads, headDim, intermediateSize: inter } = runner.dims;
  const inF = { qkv: hd, o: numHeads * headDim, gateUp: hd, down: inter }[which];
  return { inF, outF: runner.outFeatures(which) };
}

/**
 * Like pseudoQuantizeScaled, but rounding as the final quantization does with GPTQ on: per output column the
 * better of round-to-nearest and GPTQ (outside `keepRtn`), then the rows divided back by s.
 */
function pseudoQuantizeGptq(
  runner: LayerRunner,
  w: Float32Array, // (in, out)
  s: Float32Array, // (in)
  inF: number,
  outF: number,
  g: number,
  gram: Float64Array, // (in, in)
  keepRtn: [number, number][],
): Float32Array {
  const scaled = scaleRows(w, s, inF, outF);
  const rtn = groupQuantize(scaled, inF, outF, g);
  const refined = gptqQuantize(scaled, inF, outF, g, dampedGram(gram, inF, s));
  const choice = { w: scaled, inF, outF, groupSize: g, gram, rowScale: s };
  const { mixed } = chooseColumns(runner, choice, rtn, refined, keepRtn);
  return scaleRows(dequantizeGroups(mixed, inF, outF, g), s, inF, outF, true);
}

/** The clip bounds (in/g, out) as a share of each group's max |w| (1 = not clipped). */
function clipRatios(w: Float32Array, clip: Float32Array, inF: number, outF: number, g: number): Float32Array {
  const ratio = new Float32Array(clip.length); // (in/g, out)
  for (let gi = 0; gi < inF / g; gi++) {
    for (let n = 0; n < outF; n++) {
      let max = 0;
      for (let k = gi * g; k < (gi + 1) * g; k++) max = Math.max(max, Math.abs(w[k * outF + n]));
      ratio[gi * outF + n] = max > 0 ? Math.min(1, clip[gi * outF + n] / max) : 1;
    }
  }
  return ratio;
}

/** Blocks (rows of seqlen tokens) of `x` picked by index into a fresh compact array. */
function gatherBlocks(x: Float32Array, blocks: readonly number[], span: number): Float32Array {
  const out = new Float32Array(blocks.length * span); // (blocks.length * seqlen, hidden)
  for (const [i, b] of blocks.entries()) out.set(x.subarray(b * span, (b + 1) * span), i * span);
  return out;
}

function meanSquaredError(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    sum += d * d;
  }
  return sum / a.length;
}

/**
 * Quantizes one layer. `x` (numBlocks * seqlen, hidden) holds its inputs and receives its outputs (see the
 * file comment for which output).
 */
export async function quantizeLayerAwq(
  runner: LayerRunner,
  fp: DenseLayer,
  x: Float32Array, // (numBlocks * seqlen, hidden), replaced by the layer's output
  numBlocks: number,
  opts: LayerQuantOptions,
  onStage?: (stage: string) => void,
): Promise<QuantizedLayer> {
  const { hiddenSize: hd, numHeads, numKvHeads, headDim, intermediateSize: inter } = runner.dims;
  const g = opts.groupSize;
  const span = runner.seqlen * hd;
  const allBlocks = Array.from({ length: numBlocks }, (_, i) => i);
  const searchCount = Math.min(opts.searchBlocks, numBlocks);
  const searchIdx = Array.from({ length: searchCount }, (_, i) => Math.floor((i * numBlocks) / searchCount));

  // The current layer: norms and effective (dequantized where final) weights, and the final quantized linears.
  const state: DenseLayer = { ...fp };
  const final = {} as Record<FusedLinear, GroupQuantized>;
  const notes: string[] = [];
  const norms = () => ({ inputNorm: state.inputNorm, postAttentionNorm: state.postAttentionNorm });

  /**
   * One pass over every block of `h` with the current state (the whole layer, or one half of it), collecting
   * the inputs of `which`; `h` is updated in place.
   */
  const capture = async (
    which: FusedLinear,
    h: Float32Array,
    part: "layer" | "attention" | "mlp",
  ): Promise<InputStats> => {
    const acc = new InputStatsAccumulator(runner, shapeOf(runner, which).inF, runner.seqlen);
    for (const w of FUSED_ORDER) runner.setLinear(w, state[w]);
    await runner.forward(
      h,
      norms(),
      allBlocks,
      (linear, input) => {
        if (linear === which) acc.add(input);
      },
      part,
    );
    return acc.finish();
  };

  onStage?.("fp16 pass");
  const target = x.slice(); // (numBlocks * seqlen, hidden) the fp16 layer's output
  const qkvStats = await capture("qkv", target, "layer");
  const searchIn = gatherBlocks(x, searchIdx, span); // (searchCount * seqlen, hidden)
  const searchTarget = gatherBlocks(target, searchIdx, span); // (searchCount * seqlen, hidden)
  const searchRange = Array.from({ length: searchCount }, (_, i) => i);
  // After the attention half is final: the residual stream entering the MLP half, on the search blocks.
  let searchMlpIn: Float32Array | null = null; // (searchCount * seqlen, hidden)

  /**
   * Layer-output MSE on the search blocks with `which` replaced by `w`. Once the attention half is final, only
   * the MLP half runs (from the saved residual stream): the same output, a third of the work.
   */
  const layerLoss = async (which: FusedLinear, w: Float32Array): Promise<number> => {
    for (const other of FUSED_ORDER) runner.setLinear(other, other === which ? w : state[other]);
    const h = (searchMlpIn ?? searchIn).slice();
    await runner.forward(h, norms(), searchRange, undefined, searchMlpIn === null ? "layer" : "mlp");
    return meanSquaredError(h, searchTarget);
  };

  /** Scale search + fold + clip + quantize of one stage. `foldInto` applies 1/s to the op before. */
  const stage = async (
    which: FusedLinear,
    stats: InputStats,
    searchScale: boolean,
    foldInto: (s: Float32Array) => void,
    noClipColumns: [number, number][],
  ): Promise<void> => {
    const { inF, outF } = shapeOf(runner, which);
    const w = fp[which];
    let s: Float32Array | null = null;
    if (searchScale) {
      onStage?.(`${which} scales`);
      const wMean = weightSalience([{ w, outF }], inF, g);
      const result = await searchScales(scaleFamilies(stats.absMean, wMean), inF, (cand) =>
        layerLoss(
          which,
          opts.gptq && opts.searchWithGptq && inF <= GPTQ_MAX_IN_FEATURES
            ? pseudoQuantizeGptq(runner, w, cand, inF, outF, g, stats.gram, opts.gptqQk ? [] : noClipColumns)
            : pseudoQuantizeScaled(w, cand, inF, outF, g),
        ),
      );
      notes.push(
        `${which}: ${result.label} (layer mse ${result.loss.toExponential(3)}, s=1 ${result.identityLoss.toExponential(3)})`,
      );
      s = result.scales;
    }
    if (s !== null) foldInto(s);
    const scaled = s === null ? w : scaleRows(w, s, inF, outF); // (in, out)
    onStage?.(`${which} clip`);
    const clip = searchClip(runner, {
      w: scaled,
      inF,
      outF,
      groupSize: g,
      gram: stats.gram,
      rowScale: s,
      noClipColumns,
    });
    final[which] = groupQuantize(scaled, inF, outF, g, { clip });
    if (opts.gptq && inF <= GPTQ_MAX_IN_FEATURES) {
      onStage?.(`${which} gptq`);
      const h = dampedGram(stats.gram, inF, s);
      const choice = { w: scaled, inF, outF, groupSize: g, gram: stats.gram, rowScale: s };
      const keep = opts.gptqQk ? [] : noClipColumns;
      const plain = chooseColumns(runner, choice, final[which], gptqQuantize(scaled, inF, outF, g, h), keep);
      final[which] = plain.mixed;
      let clipped = 0;
      if (opts.gptqClip) {
        const ratio = clipRatios(scaled, clip, inF, outF, g);
        const withClip = chooseColumns(
          runner,
          choice,
          final[which],
          gptqQuantize(scaled, inF, outF, g, h, ratio),
          keep,
        );
        final[which] = withClip.mixed;
        clipped = withClip.taken;
      }
      notes.push(
        `${which}: gptq rounding in ${plain.taken}/${outF} columns` +
          (opts.gptqClip ? `, then gptq with clipping in ${clipped}` : ""),
      );
    }
    state[which] = dequantizeGroups(final[which], inF, outF, g);
  };

  const qDim = numHeads * headDim;
  const kvDim = numKvHeads * headDim;
  await stage(
    "qkv",
    qkvStats,
    true,
    (s) => {
      state.inputNorm = foldIntoNorm(state.inputNorm, s);
    },
    opts.clipQk ? [] : [[0, qDim + kvDim]],
  );
  onStage?.("o inputs");
  const h = x.slice(); // (numBlocks * seqlen, hidden) becomes the residual stream after the attention half
  const oStats = await capture("o", h, "attention");
  await stage(
    "o",
    oStats,
    numKvHeads === numHeads,
    (s) => {
      divideQuantizedColumns(final.qkv, s, qDim + kvDim, runner.outFeatures("qkv"));
      state.qkv = dequantizeGroups(final.qkv, hd, runner.outFeatures("qkv"), g);
    },
    [],
  );
  onStage?.("gate/up inputs");
  h.set(x);
  for (const w of FUSED_ORDER) runner.setLinear(w, state[w]);
  await runner.forward(h, norms(), allBlocks, undefined, "attention"); // the attention half is final now
  searchMlpIn = gatherBlocks(h, searchIdx, span);
  const gateUpStats = await capture("gateUp", h.slice(), "mlp");
  await stage(
    "gateUp",
    gateUpStats,
    true,
    (s) => {
      state.postAttentionNorm = foldIntoNorm(state.postAttentionNorm, s);
    },
    [],
  );
  onStage?.("down inputs");
  const downStats = await capture("down", h.slice(), "mlp");
  await stage(
    "down",
    downStats,
    true,
    (s) => {
      divideQuantizedColumns(final.gateUp, s, inter, 2 * inter);
      state.gateUp = dequantizeGroups(final.gateUp, hd, 2 * inter, g);
    },
    [],
  );

  onStage?.("output");
  if (opts.propagate === "fp16") {
    x.set(target);
  } else {
    for (const w of FUSED_ORDER) runner.setLinear(w, state[w]);
    await runner.forward(h, norms(), allBlocks, undefined, "mlp");
    x.set(h);
  }
  return { inputNorm: state.inputNorm, postAttentionNorm: state.postAttentionNorm, linears: final, notes };
}
