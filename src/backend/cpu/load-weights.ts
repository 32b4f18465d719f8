/**
 * Reads a checkpoint into the CPU backend's f32 layout: norms and the embedding table as JS arrays, every
 * linear (q/k/v fused, gate/up fused, o, down, lm_head) panel packed into the wasm arena.
 *
 * AWQ linears are dequantized once at load (straight from the packed words into panels) rather than on the fly. Measured on this 2-core machine
 * (bench/cpu-bench.ts, tiny-chat-awq): the f32 panel matmul runs at ~35-39 GFLOP/s, and unpacking nibbles inside
 * the inner loop would cost more than the multiply-adds it feeds; the price is 8x the weight memory
 * (4 bytes instead of 0.5 per weight), which is fine for the models the CPU backend is meant for (the demo
 * models, tests of one or two layers of the 13B shape) and out of reach anyway for a full 13B in wasm32's 4 GiB.
 */
import { AWQ_ORDER } from "../../model/awq.js";
import { fusedParts, loadedBytes, readFloatTensor } from "../../model/fused-layout.js";
import { f16ToF32Array } from "../../model/half.js";
import type { Checkpoint, ModelSource } from "../../model/types.js";
import { describeWeights, type LinearWeightNames } from "../../model/weights.js";
import type { DecoderLayerWeights, PackedLinear } from "./decoder-layer.js";
import type { WasmArena } from "./wasm-arena.js";
import { dequantizeAwqToPanels, PANEL, packPanelsFromNK } from "./wasm-matmul.js";

export interface CpuWeights {
  embedding: Float32Array; // (vocab, hidden)
  layers: DecoderLayerWeights[];
  finalNorm: Float32Array; // (hidden)
  lmHead: PackedLinear; // (hidden) -> (vocab padded to a multiple of 8)
}

/** Tracks bytes read for BackendOptions.onLoadProgress; a tensor read after BackendOptions.signal aborts throws. */
export class LoadProgress {
  private loaded = 0;
  constructor(
    private readonly total: number,
    private readonly report?: (loaded: number, total: number) => void,
    private readonly signal?: AbortSignal,
  ) {}
  add(bytes: number): void {
    this.loaded += bytes;
    this.report?.(this.loaded, this.total);
    this.signal?.throwIfAborted();
  }
}

/** A float tensor as f32 (readFloatTensor), counted in the load's progress. */
async function readFloat(
  ckpt: Checkpoint,
  name: string,
  count: number,
  progress: LoadProgress,
): Promise<Float32Array> {
  const out = await readFloatTensor(ckpt, name, count);
  progress.add(ckpt.info(name).byteLength);
  return out;
}

/**
 * Loads one or more linears sharing an input (q/k/v, gate/up) into one packed matrix whose columns are the
 * parts side by side. Each part is AWQ (qweight/qzeros/scales) or dense (weight, (out, in)).
 */
async function loadPackedLinear(
  ckpt: Checkpoint,
  parts: LinearWeightNames[],
  arena: WasmArena,
  progress: LoadProgress,
): Promise<PackedLinear> {
  const inFeatures = parts[0].inFeatures;
  const totalOut = parts.reduce((sum, p) => sum + p.outFeatures, 0);
  const paddedOut = Math.ceil(totalOut / PANEL) * PANEL;
  const ptr = arena.allocF32(paddedOut * inFeatures, parts[0].module);
  let column = 0;
  for (const [i, part] of parts.entries()) {
    if (column % PANEL !== 0 || (i < parts.length - 1 && part.outFeatures % PANEL !== 0)) {
      throw new Error(
        `CPU backend: ${part.module} has ${part.outFeatures} outputs; fused parts need multiples of ${PANEL}`,
      );
    }
    const partPadded = i === parts.length - 1 ? paddedOut - column : part.outFeatures;
    const dst = arena.f32(ptr + column * inFeatures * 4, partPadded * inFeatures);
    if (part.kind === "awq") {
      const read = async (name: string) => {
        const data = await ckpt.read(name);
        progress.add(ckpt.info(name).byteLength);
        return data;
      };
      if (ckpt.info(part.scales).dtype !== "F16")
        throw new Error(`${ckpt.dir}: ${part.scales} must be F16 (AutoAWQ GEMM)`);
      const tensors = {
        qweight: (await read(part.qweight)) as Int32Array,
        qzeros: (await read(part.qzeros)) as Int32Array,
        scales: (await read(part.scales)) as Uint16Array,
      };
      const groups = inFeatures / part.groupSize;
      const expect = (what: string, got: number, want: number) => {
        if (got !== want)
          throw new Error(`${ckpt.dir}: ${part.module}.${what} has ${got} elements, expected ${want}`);
      };
      if (!Number.isInteger(groups) || part.outFeatures % PANEL !== 0) {
        throw new Error(`${ckpt.dir}: ${part.module}: AWQ needs in % ${part.groupSize} = 0 and out % 8 = 0`);
      }
      expect("qweight", tensors.qweight.length, (inFeatures * part.outFeatures) / PANEL);
      expect("qzeros", tensors.qzeros.length, (groups * part.outFeatures) / PANEL);
      expect("scales", tensors.scales.length, groups * part.outFeatures);
      const scales = f16ToF32Array(tensors.scales); // (in / g, out)
      dequantizeAwqToPanels(
        tensors.qweight,
        tensors.qzeros,
        scales,
        inFeatures,
        part.outFeatures,
        part.groupSize,
        AWQ_ORDER,
        dst,
      );
    } else {
      const w = await readFloat(ckpt, part.weight, part.outFeatures * inFeatures, progress); // (out, in)
      packPanelsFromNK(w, part.outFeatures, inFeatures, dst);
    }
    column += part.outFeatures;
  }
  return { ptr, inFeatures, outFeatures: paddedOut };
}

/** Reads every weight of `source` into `arena` (and JS arrays for norms and embeddings). */
export async function loadCpuWeights(
  source: ModelSource,
  arena: WasmArena,
  onProgress?: (loaded: number, total: number) => void,
  signal?: AbortSignal,
): Promise<CpuWeights> {
  signal?.throwIfAborted();
  const { config, checkpoint: ckpt } = source;
  const names = describeWeights(config);
  const total = loadedBytes(ckpt, names);
  const progress = new LoadProgress(total, onProgress, signal);
  const hd = config.hiddenSize;
  const embedding = await readFloat(ckpt, names.embedTokens, config.vocabSize * hd, progress);
  const layers: DecoderLayerWeights[] = [];
  for (const layer of names.layers) {
    layers.push({
      inputNorm: await readFloat(ckpt, layer.inputLayernorm, hd, progress),
      qkv: await loadPackedLinear(ckpt, fusedParts(layer, "qkv"), arena, progress),
      o: await loadPackedLinear(ckpt, fusedParts(layer, "o"), arena, progress),
      postAttentionNorm: await readFloat(ckpt, layer.postAttentionLayernorm, hd, progress),
      gateUp: await loadPackedLinear(ckpt, fusedParts(layer, "gateUp"), arena, progress),
      down: await loadPackedLinear(ckpt, fusedParts(layer, "down"), arena, progress),
    });
  }
  const finalNorm = await readFloat(ckpt, names.norm, hd, progress);
  let lmHead: PackedLinear;
  if (names.lmHeadTied) {
    const paddedOut = Math.ceil(config.vocabSize / PANEL) * PANEL;
    const ptr = arena.allocF32(paddedOut * hd, "lm_head");
    packPanelsFromNK(embedding, config.vocabSize, hd, arena.f32(ptr, paddedOut * hd));
    lmHead = { ptr, inFeatures: hd, outFeatures: paddedOut };
  } else {
    const head: LinearWeightNames = {
      kind: "dense",
      module: "lm_head",
      weight: names.lmHead,
      inFeatures: hd,
      outFeatures: config.vocabSize,
    };
    lmHead = await loadPackedLinear(ckpt, [head], arena, progress);
  }
  return { embedding, layers, finalNorm, lmHead };
}
