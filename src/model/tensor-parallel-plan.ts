/**
 * Tensor parallelism's plan (Megatron-LM's split, under vLLM's names): which heads, columns, rows and vocabulary
 * each of N ranks owns, and where the ranks' partial results meet. Pure data: the CPU reference
 * (backend/cpu/tensor-parallel-model.ts) runs it today, and the CUDA/NCCL ranks are to run the same plan.
 *
 *   embed_tokens   vocab-parallel: rank r holds the rows of vocab[r]; other ids give zeros   -> all-reduce (sum)
 *   q/k/v_proj     column-parallel by heads: q columns of heads[r], k and v columns of kvHeads[r]
 *   attention      the rank's heads only, over a KV cache that holds only the rank's KV heads
 *   o_proj         row-parallel: the input rows of heads[r]; a partial (rows, hidden)           -> all-reduce (sum)
 *   gate/up_proj   column-parallel: intermediate columns intermediate[r]
 *   down_proj      row-parallel: the input rows intermediate[r]; a partial (rows, hidden)       -> all-reduce (sum)
 *   lm_head        vocab-parallel (column-parallel): the logits of vocab[r]                     -> all-gather (concat)
 *
 * Norms are replicated and every rank holds the whole residual stream (rows, hidden), so the scheduler runs
 * once and every rank runs the same step. AWQ weights split where their packing allows: columns in whole
 * packed words (8 columns), rows in whole quantization groups; a size that would cut a group is refused.
 */
import type { LayerDims } from "./fused-layout.js";
import type { ModelConfig } from "./types.js";
import type { LinearName } from "./weights.js";

/** Half-open index range [start, end). */
export interface IndexRange {
  start: number;
  end: number;
}

/** Column-parallel: the rank owns a range of output columns. Row-parallel: a range of input rows. */
export type LinearSplit = "column" | "row";

/** How each Llama linear of a decoder layer is split (the lm_head is column-parallel over the vocabulary). */
export const LINEAR_SPLIT: Readonly<Record<LinearName, LinearSplit>> = {
  q_proj: "column",
  k_proj: "column",
  v_proj: "column",
  o_proj: "row",
  gate_proj: "column",
  up_proj: "column",
  down_proj: "row",
};

/** Where the ranks' results meet, in the order one forward pass reaches them. */
export type Collective =
  | { op: "all-reduce"; after: "embed_tokens" | "o_proj" | "down_proj" }
  | { op: "all-gather"; after: "lm_head" };

/** Once per forward, before the layers: the vocab-parallel embedding's rows summed. */
export const EMBEDDING_COLLECTIVE: Collective = { op: "all-reduce", after: "embed_tokens" };
/** Once per layer each: attention's and the MLP's row-parallel outputs summed before the residual add. */
export const LAYER_COLLECTIVES: readonly Collective[] = [
  { op: "all-reduce", after: "o_proj" },
  { op: "all-reduce", after: "down_proj" },
];
/** Once per forward, after the layers: each rank's vocabulary columns of the logits, side by side. */
export const LOGITS_COLLECTIVE: Collective = { op: "all-gather", after: "lm_head" };

/** What one rank owns. */
export interface RankShard {
  rank: number;
  heads: IndexRange; // query heads
  kvHeads: IndexRange; // KV heads: the rank's KV cache holds (numBlocks, blockSize, kvHeads, headDim)
  intermediate: IndexRange; // MLP columns of gate/up, rows of down
  vocab: IndexRange; // embedding rows and lm_head columns
  /** The rank's layer as the layer code sees it: its heads, KV heads and intermediate width; hidden whole. */
  dims: LayerDims;
}

export interface TensorParallelPlan {
  size: number;
  vocabSize: number;
  /** The whole (unsharded) layer. */
  dims: LayerDims;
  ranks: RankShard[];
}

/** vLLM pads the vocabulary to a multiple of 64 per rank before splitting it (VocabParallelEmbedding). */
export const VOCAB_PADDING = 64;
/** Output columns one packed AWQ int32 word holds. */
const AWQ_PACK = 8;

/** A tensor-parallel size this model cannot take; `param` names the flag. */
export class TensorParallelError extends Error {
  override name = "TensorParallelError";
  readonly param = "tensor-parallel-size";
}

/** The model facts the plan depends on (a ModelConfig is one). */
export type PlanModel = Pick<
  ModelConfig,
  | "hiddenSize"
  | "numHeads"
  | "numKvHeads"
  | "headDim"
  | "intermediateSize"
  | "rmsNormEps"
  | "vocabSize"
  | "quantization"
>;

/** Why `size` cannot split `model`, or null when it can. */
function whyNot(model: PlanModel, size: number): string | null {
  if (!Number.isInteger(size) || size < 1)
    return `tensor-parallel-size must be a positive integer, got ${size}`;
  if (model.numHeads % size !== 0)
    return `tensor-parallel-size ${size} does not divide the model's ${model.numHeads} attention heads (num_attention_heads)`;
  if (model.numKvHeads % size !== 0)
    return `tensor-parallel-size ${size} does not divide the model's ${model.numKvHeads} KV heads (num_key_value_heads)`;
  if (model.intermediateSize % size !== 0)
    return `tensor-parallel-size ${size} does not divide the model's intermediate size ${model.intermediateSize} (intermediate_size)`;
  const q = model.quantization;
  if (q !== null && size > 1) {
    const kvColumns = (model.numKvHeads / size) * model.headDim;
    const mlpColumns = model.intermediateSize / size;
    if (kvColumns % AWQ_PACK !== 0 || mlpColumns % AWQ_PACK !== 0)
      return (
        `tensor-parallel-size ${size}: AWQ packs ${AWQ_PACK} output columns per int32, and a rank would own ` +
        `${kvColumns} k/v columns and ${mlpColumns} gate/up columns`
      );
    const rowParallel: [string, number][] = [
      ["o_proj", (model.numHeads / size) * model.headDim],
      ["down_proj", mlpColumns],
    ];
    for (const [linear, rows] of rowParallel) {
      if (rows % q.groupSize !== 0)
        return (
          `tensor-parallel-size ${size}: ${linear} is row-parallel and each rank would own ${rows} of its input ` +
          `rows, not a whole number of AWQ groups of ${q.groupSize}`
        );
    }
  }
  return null;
}

/** The sizes up to `limit` that split `model` (for error messages). */
export function validTensorParallelSizes(model: PlanModel, limit = 64): number[] {
  const sizes: number[] = [];
  for (let n = 1; n <= limit; n++) if (whyNot(model, n) === null) sizes.push(n);
  return sizes;
}

/** The even split of `count` items over `size` ranks: rank r's range. */
function evenRange(count: number, size: number, rank: number): IndexRange {
  const per = count / size;
  return { start: rank * per, end: (rank + 1) * per };
}

/** vLLM's vocabulary split: ceil(vocab / (size * 64)) * 64 ids per rank, the last rank short. */
export function vocabRange(vocabSize: number, size: number, rank: number): IndexRange {
  const per = Math.ceil(vocabSize / (size * VOCAB_PADDING)) * VOCAB_PADDING;
  return { start: Math.min(vocabSize, rank * per), end: Math.min(vocabSize, (rank + 1) * per) };
}

/** Plans `size` ranks for `model`; TensorParallelError names why a size cannot work and which would. */
export function planTensorParallel(model: PlanModel, size: number): TensorParallelPlan {
  const problem = whyNot(model, size);
  if (problem !== null) {
    const valid = Number.isInteger(size) && size >= 1 ? validTensorParallelSizes(model) : [];
    throw new TensorParallelError(
      valid.length > 0 ? `${problem}; this model takes ${valid.join(", ")}` : problem,
    );
  }
  const dims: LayerDims = {
    hiddenSize: model.hiddenSize,
    numHeads: model.numHeads,
    numKvHeads: model.numKvHeads,
    headDim: model.headDim,
    intermediateSize: model.intermediateSize,
    rmsNormEps: model.rmsNormEps,
  };
  const ranks: RankShard[] = [];
  for (let rank = 0; rank < size; rank++) {
    ranks.push({
      rank,
      heads: evenRange(model.numHeads, size, rank),
      kvHeads: evenRange(model.numKvHeads, size, rank),
      intermediate: evenRange(model.intermediateSize, size, rank),
      vocab: vocabRange(model.vocabSize, size, rank),
      dims: {
        ...dims,
        numHeads: model.numHeads / size,
        numKvHeads: model.numKvHeads / size,
        intermediateSize: model.intermediateSize / size,
      },
    });
  }
  return { size, vocabSize: model.vocabSize, dims, ranks };
}

/**
 * The part of a Llama linear that `shard` owns: output columns (column-parallel) or input rows (row-parallel),
 * in the unsharded linear's indices.
 */
export function linearShard(
  plan: TensorParallelPlan,
  shard: RankShard,
  linear: LinearName,
): { split: LinearSplit; range: IndexRange } {
  const { headDim } = plan.dims;
  const scaled = (r: IndexRange, by: number): IndexRange => ({ start: r.start * by, end: r.end * by });
  switch (linear) {
    case "q_proj":
    case "o_proj":
      return { split: LINEAR_SPLIT[linear], range: scaled(shard.heads, headDim) };
    case "k_proj":
    case "v_proj":
      return { split: LINEAR_SPLIT[linear], range: scaled(shard.kvHeads, headDim) };
    case "gate_proj":
    case "up_proj":
    case "down_proj":
      return { split: LINEAR_SPLIT[linear], range: shard.intermediate };
  }
}

/** The collective after a linear's output, if any (an all-reduce after every row-parallel linear). */
export function collectiveAfter(linear: LinearName): Collective | null {
  return LAYER_COLLECTIVES.find((c) => c.after === linear) ?? null;
}
