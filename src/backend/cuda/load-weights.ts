/**
 * Streams a checkpoint into the CUDA engine tensor by tensor (never a whole file): norms and the embedding as
 * vectors, q|k|v and gate|up as fused linears (the addon concatenates them along `out` and repacks AWQ once).
 */
import { FUSED_LINEARS, loadedBytes } from "../../model/fused-layout.js";
import type { Checkpoint, ModelConfig, ModelSource, TensorData } from "../../model/types.js";
import { describeWeights, type LinearWeightNames } from "../../model/weights.js";
import type {
  NativeEngine,
  NativeLinearPart,
  NativeModelDims,
  NativeTensor,
  NativeWeightSlot,
} from "./native-addon.js";

/** The addon's view of a model config. */
export function nativeDims(config: ModelConfig): NativeModelDims {
  const s = config.ropeScaling;
  return {
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    numLayers: config.numLayers,
    numHeads: config.numHeads,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    vocabSize: config.vocabSize,
    rmsNormEps: config.rmsNormEps,
    ropeTheta: config.ropeTheta,
    ropeScalingType: s === null ? 0 : s.type === "linear" ? 1 : 2,
    ropeFactor: s?.factor ?? 1,
    ropeOriginalMaxPositions: s?.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings,
    tieWordEmbeddings: config.tieWordEmbeddings,
    groupSize: config.quantization?.groupSize ?? 0,
  };
}

async function readTensor(
  ckpt: Checkpoint,
  name: string,
  progress: (bytes: number) => void,
): Promise<NativeTensor> {
  const info = ckpt.info(name);
  if (info.dtype !== "F16" && info.dtype !== "BF16" && info.dtype !== "F32" && info.dtype !== "I32") {
    throw new Error(
      `tensor "${name}" in ${info.file}: dtype ${info.dtype} is not supported by the CUDA backend`,
    );
  }
  const data: TensorData = await ckpt.read(name);
  progress(info.byteLength);
  return { name, dtype: info.dtype, shape: info.shape, data };
}

async function readLinear(
  ckpt: Checkpoint,
  linear: LinearWeightNames,
  progress: (bytes: number) => void,
): Promise<NativeLinearPart> {
  if (linear.kind === "dense") return { weight: await readTensor(ckpt, linear.weight, progress) };
  return {
    qweight: await readTensor(ckpt, linear.qweight, progress),
    qzeros: await readTensor(ckpt, linear.qzeros, progress),
    scales: await readTensor(ckpt, linear.scales, progress),
  };
}

/** Uploads every weight of `source`; reports bytes read through onProgress; `signal` is checked between uploads. */
export async function uploadCheckpoint(
  engine: NativeEngine,
  source: ModelSource,
  onProgress?: (loadedBytes: number, totalBytes: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  const { config, checkpoint } = source;
  const names = describeWeights(config);
  const total = loadedBytes(checkpoint, names);
  let loaded = 0;
  const progress = (bytes: number) => {
    loaded += bytes;
    onProgress?.(loaded, total);
  };

  // Every upload as (read, upload) in order; the read of the next one overlaps the upload of the current one, so
  // at most two uploads' tensors are in host memory at a time.
  const uploads: { read: () => Promise<unknown>; upload: (data: unknown) => Promise<void> }[] = [];
  const vector = (slot: NativeWeightSlot, layer: number, name: string) =>
    uploads.push({
      read: () => readTensor(checkpoint, name, progress),
      upload: (t) => engine.uploadVector(slot, layer, t as NativeTensor),
    });
  vector("embed", 0, names.embedTokens);
  for (const layer of names.layers) {
    vector("inputNorm", layer.index, layer.inputLayernorm);
    vector("postNorm", layer.index, layer.postAttentionLayernorm);
    for (const [slot, members] of FUSED_LINEARS) {
      const kinds = new Set(members.map((m) => layer.linears[m].kind));
      if (kinds.size > 1) {
        throw new Error(
          `layer ${layer.index}: ${members.join(", ")} mix AWQ and unquantized weights (modules_to_not_convert); ` +
            "the CUDA backend fuses them and needs one kind",
        );
      }
      uploads.push({
        read: async () => {
          const parts: NativeLinearPart[] = [];
          for (const m of members) parts.push(await readLinear(checkpoint, layer.linears[m], progress));
          return parts;
        },
        upload: (parts) => engine.uploadLinear(slot, layer.index, parts as NativeLinearPart[]),
      });
    }
  }
  vector("finalNorm", 0, names.norm);
  if (!names.lmHeadTied) {
    uploads.push({
      read: async () => [{ weight: await readTensor(checkpoint, names.lmHead, progress) }],
      upload: (parts) => engine.uploadLinear("lmHead", 0, parts as NativeLinearPart[]),
    });
  }
  let next: Promise<unknown> | null = uploads.length > 0 ? uploads[0].read() : null;
  for (let i = 0; i < uploads.length; i++) {
    signal?.throwIfAborted();
    const data = await next;
    next = i + 1 < uploads.length ? uploads[i + 1].read() : null;
    // A failed read of the next tensor surfaces at its own await; keep it from being reported as unhandled first.
    next?.catch(() => {});
    await uploads[i].upload(data);
  }
}
