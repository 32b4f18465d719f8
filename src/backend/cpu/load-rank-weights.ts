/**
 * Reads a checkpoint into N tensor-parallel ranks' CPU weights, each rank in its own wasm arena (as each GPU
 * rank holds its own memory): every tensor is read once, each rank's shard cut from it as the plan assigns
 * (model/tensor-parallel-plan.ts, model/tensor-parallel-shard.ts), then dequantized / panel packed exactly as
 * load-weights.ts does for one rank. Norms are replicated; the embedding and lm_head keep their vocabulary rows.
 */
import { AWQ_ORDER } from "../../model/awq.js";
import { FUSED_LINEARS, type FusedLinear, loadedBytes, readFloatTensor } from "../../model/fused-layout.js";
import { f16ToF32Array } from "../../model/half.js";
import { linearShard, type RankShard, type TensorParallelPlan } from "../../model/tensor-parallel-plan.js";
import {
  type AwqShardTensors,
  sliceAwqLinear,
  sliceDenseLinear,
  sliceMatrix,
} from "../../model/tensor-parallel-shard.js";
import type { Checkpoint, ModelSource } from "../../model/types.js";
import { describeWeights, type LayerWeightNames } from "../../model/weights.js";
import type { DecoderLayerWeights, PackedLinear } from "./decoder-layer.js";
import { LoadProgress } from "./load-weights.js";
import type { WasmArena } from "./wasm-arena.js";
import { dequantizeAwqToPanels, PANEL, packPanelsFromNK } from "./wasm-matmul.js";

/** One rank's weights: the CpuWeights of its shard. */
export interface RankWeights {
  embedding: Float32Array; // (vocab[r] ids, hidden): rows vocab[r].start .. vocab[r].end
  layers: DecoderLayerWeights[]; // the rank's heads, KV heads and intermediate columns
  finalNorm: Float32Array; // (hidden)
  lmHead: PackedLinear; // (hidden) -> (vocab[r] ids padded to a multiple of 8)
}

/** One rank's piece of one Llama linear, ready to pack. */
type PartShard =
  | ({ kind: "awq"; groupSize: number; inFeatures: number; outFeatures: number } & AwqShardTensors)
  | { kind: "dense"; weight: Float32Array; inFeatures: number; outFeatures: number }; // weight (out, in)

/** The parts side by side in one panel-packed matrix (q|k|v, gate|up), as load-weights.ts lays them out. */
function packParts(arena: WasmArena, parts: PartShard[], what: string): PackedLinear {
  const inFeatures = parts[0].inFeatures;
  const totalOut = parts.reduce((sum, p) => sum + p.outFeatures, 0);
  const paddedOut = Math.ceil(totalOut / PANEL) * PANEL;
  const ptr = arena.allocF32(paddedOut * inFeatures, what);
  let column = 0;
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    if (!last && part.outFeatures % PANEL !== 0)
      throw new Error(
        `CPU backend: ${what} shard has ${part.outFeatures} outputs; fused parts need multiples of ${PANEL}`,
      );
    const dst = arena.f32(
      ptr + column * inFeatures * 4,
      (last ? paddedOut - column : part.outFeatures) * inFeatures,
    );
    if (part.kind === "awq") {
      dequantizeAwqToPanels(
        part.qweight,
        part.qzeros,
        f16ToF32Array(part.scales),
        inFeatures,
        part.outFeatures,
        part.groupSize,
        AWQ_ORDER,
        dst,
      );
    } else {
      packPanelsFromNK(part.weight, part.outFeatures, inFeatures, dst);
    }
    column += part.outFeatures;
  }
  return { ptr, inFeatures, outFeatures: paddedOut };
}

/** Reads the fused linear `which` of one layer and cuts every rank's shard: parts[rank][part]. */
async function readFusedShards(
  ckpt: Checkpoint,
  plan: TensorParallelPlan,
  layer: LayerWeightNames,
  which: FusedLinear,
  progress: LoadProgress,
): Promise<PartShard[][]> {
  const members = FUSED_LINEARS.find(([w]) => w === which)![1];
  const perRank: PartShard[][] = plan.ranks.map(() => []);
  for (const member of members) {
    const names = layer.linears[member];
    if (names.kind === "awq") {
      const read = async (name: string) => {
        const data = await ckpt.read(name);
        progress.add(ckpt.info(name).byteLength);
        return data;
      };
      if (ckpt.info(names.scales).dtype !== "F16")
        throw new Error(`${ckpt.dir}: ${names.scales} must be F16 (AutoAWQ GEMM)`);
      const full: AwqShardTensors = {
        qweight: (await read(names.qweight)) as Int32Array,
        qzeros: (await read(names.qzeros)) as Int32Array,
        scales: (await read(names.scales)) as Uint16Array,
      };
      const groups = names.inFeatures / names.groupSize;
      const expect = (what: string, got: number, want: number) => {
        if (got !== want)
          throw new Error(`${ckpt.dir}: ${names.module}.${what} has ${got} elements, expected ${want}`);
      };
      expect("qweight", full.qweight.length, (names.inFeatures * names.outFeatures) / 8);
      expect("qzeros", full.qzeros.length, (groups * names.outFeatures) / 8);
      expect("scales", full.scales.length, groups * names.outFeatures);
      for (const shard of plan.ranks) {
        const { split, range } = linearShard(plan, shard, member);
        const cut = sliceAwqLinear(
          full,
          names.inFeatures,
          names.outFeatures,
          names.groupSize,
          split,
          range,
          names.module,
        );
        perRank[shard.rank].push({ kind: "awq", groupSize: names.groupSize, ...cut });
      }
    } else {
      const weight = await readFloatTensor(ckpt, names.weight, names.outFeatures * names.inFeatures); // (out, in)
      progress.add(ckpt.info(names.weight).byteLength);
      for (const shard of plan.ranks) {
        const { split, range } = linearShard(plan, shard, member);
        perRank[shard.rank].push({
          kind: "dense",
          ...sliceDenseLinear(weight, names.inFeatures, names.outFeatures, split, range),
        });
      }
    }
  }
  return perRank;
}

/** Reads every rank's weights of `source` into `arenas` (one per rank, rank order). */
export async function loadRankWeights(
  source: ModelSource,
  plan: TensorParallelPlan,
  arenas: WasmArena[],
  onProgress?: (loaded: number, total: number) => void,
  signal?: AbortSignal,
): Promise<RankWeights[]> {
  signal?.throwIfAborted();
  const { config, checkpoint: ckpt } = source;
  const names = describeWeights(config);
  const progress = new LoadProgress(loadedBytes(ckpt, names), onProgress, signal);
  const hd = config.hiddenSize;
  const readNorm = async (name: string) => {
    const out = await readFloatTensor(ckpt, name, hd);
    progress.add(ckpt.info(name).byteLength);
    return out;
  };
  const vocabRows = (table: Float32Array, shard: RankShard) =>
    sliceMatrix(table, config.vocabSize, hd, shard.vocab, { start: 0, end: hd }); // (vocab[r], hidden)

  const embedding = await readFloatTensor(ckpt, names.embedTokens, config.vocabSize * hd); // (vocab, hidden)
  progress.add(ckpt.info(names.embedTokens).byteLength);
  const ranks: RankWeights[] = plan.ranks.map((shard) => ({
    embedding: vocabRows(embedding, shard),
    layers: [],
    finalNorm: new Float32Array(0),
    lmHead: { ptr: 0, inFeatures: hd, outFeatures: 0 },
  }));
  for (const layer of names.layers) {
    const inputNorm = await readNorm(layer.inputLayernorm);
    const postAttentionNorm = await readNorm(layer.postAttentionLayernorm);
    const packed: Record<FusedLinear, PackedLinear[]> = { qkv: [], o: [], gateUp: [], down: [] };
    for (const [which] of FUSED_LINEARS) {
      const shards = await readFusedShards(ckpt, plan, layer, which, progress);
      for (const [rank, parts] of shards.entries())
        packed[which].push(packParts(arenas[rank], parts, `layer ${layer.index} ${which} (rank ${rank})`));
    }
    for (const [rank, weights] of ranks.entries()) {
      weights.layers.push({
        inputNorm,
        qkv: packed.qkv[rank],
        o: packed.o[rank],
        postAttentionNorm,
        gateUp: packed.gateUp[rank],
        down: packed.down[rank],
      });
    }
  }
  const finalNorm = await readNorm(names.norm);
  let head = embedding; // (vocab, hidden): tied to the embedding, else lm_head.weight
  if (!names.lmHeadTied) {
    head = await readFloatTensor(ckpt, names.lmHead, config.vocabSize * hd);
    progress.add(ckpt.info(names.lmHead).byteLength);
  }
  for (const [rank, weights] of ranks.entries()) {
    const shard = plan.ranks[rank];
    const rows = shard.vocab.end - shard.vocab.start;
    weights.finalNorm = finalNorm;
    weights.lmHead = packParts(
      arenas[rank],
      [
        {
          kind: "dense",
          weight: head === embedding ? weights.embedding : vocabRows(head, shard),
          inFeatures: hd,
          outFeatures: rows,
        },
      ],
      `lm_head (rank ${rank})`,
    );
  }
  return ranks;
}
