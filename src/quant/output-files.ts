/**
 * The files of an AutoAWQ GEMM model folder besides the weights: config.json with `quantization_config`
 * (what transformers, vLLM and awq-ts read), quant_config.json (what older AutoAWQ reads), and the
 * tokenizer / generation files copied from the fp16 model. Also the per-layer tensor list in AutoAWQ's names.
 */
import { access, chmod, copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { packAwq } from "../model/awq.js";
import { fusedOutFeatures, fusedPlacement } from "../model/fused-layout.js";
import { f32ToF16Array } from "../model/half.js";
import type { TensorToWrite } from "../model/safetensors-writer.js";
import type { ModelConfig } from "../model/types.js";
import type { LayerWeightNames, LinearName } from "../model/weights.js";
import type { QuantizedLayer } from "./awq-search.js";
import { sliceColumns } from "./group-math.js";

/** Files copied as they are when the fp16 folder has them. */
export const COPIED_FILES = [
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "tokenizer.model",
  "chat_template.jinja",
] as const;

export interface QuantizationConfig {
  quant_method: "awq";
  bits: 4;
  group_size: number;
  zero_point: true;
  version: "gemm";
  modules_to_not_convert: null;
}

export function quantizationConfig(groupSize: number): QuantizationConfig {
  return {
    quant_method: "awq",
    bits: 4,
    group_size: groupSize,
    zero_point: true,
    version: "gemm",
    modules_to_not_convert: null,
  };
}

/** config.json of the fp16 model + quantization_config; dtype float16 (AWQ GEMM kernels are fp16). */
export async function writeConfigFiles(srcDir: string, outDir: string, groupSize: number): Promise<void> {
  const config = JSON.parse(await readFile(join(srcDir, "config.json"), "utf8")) as Record<string, unknown>;
  if ("dtype" in config) config.dtype = "float16";
  else config.torch_dtype = "float16";
  config.quantization_config = quantizationConfig(groupSize);
  await writeFile(join(outDir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  const legacy = { zero_point: true, q_group_size: groupSize, w_bit: 4, version: "GEMM" };
  await writeFile(join(outDir, "quant_config.json"), `${JSON.stringify(legacy, null, 2)}\n`);
}

/** Copies the tokenizer and generation files (those present) into the output folder. */
export async function copyModelFiles(srcDir: string, outDir: string): Promise<string[]> {
  const copied: string[] = [];
  for (const name of COPIED_FILES) {
    const src = join(srcDir, name);
    const dest = join(outDir, name);
    try {
      await access(src);
    } catch {
      continue; // the fp16 folder does not have this one
    }
    await rm(dest, { force: true }); // copyFile cannot overwrite a read-only copy left by an earlier run
    await copyFile(src, dest);
    // A read-only source (a shared or cache folder) must not leave read-only copies a re-run cannot replace.
    await chmod(dest, 0o644);
    copied.push(name);
  }
  return copied;
}

/**
 * The tensors of one layer in AutoAWQ's names, dtypes and shapes, sorted by name as torch writes them:
 * `<module>.qweight` I32 (in, out/8), `.qzeros` I32 (in/g, out/8), `.scales` F16 (in/g, out), norms F16 (hidden).
 * `get` produces the quantized layer when the writer reaches it (so one layer is in memory at a time).
 */
export function layerTensors(
  config: ModelConfig,
  names: LayerWeightNames,
  groupSize: number,
  get: () => Promise<QuantizedLayer>,
): TensorToWrite[] {
  const hd = config.hiddenSize;
  const tensors: TensorToWrite[] = [
    {
      name: names.inputLayernorm,
      dtype: "F16",
      shape: [hd],
      data: async () => f32ToF16Array((await get()).inputNorm),
    },
    {
      name: names.postAttentionLayernorm,
      dtype: "F16",
      shape: [hd],
      data: async () => f32ToF16Array((await get()).postAttentionNorm),
    },
  ];
  const placement = fusedPlacement(config);
  for (const [name, linear] of Object.entries(names.linears) as [
    LinearName,
    (typeof names.linears)[LinearName],
  ][]) {
    const { inFeatures: inF, outFeatures: outF, module } = linear;
    const [fused, start] = placement[name];
    const width = fusedOutFeatures(config, fused);
    const groups = inF / groupSize;
    const part = async () => (await get()).linears[fused];
    tensors.push(
      {
        name: `${module}.qweight`,
        dtype: "I32",
        shape: [inF, outF / 8],
        data: async () => packAwq(sliceColumns((await part()).q, inF, width, start, outF), inF, outF),
      },
      {
        name: `${module}.qzeros`,
        dtype: "I32",
        shape: [groups, outF / 8],
        data: async () =>
          packAwq(sliceColumns((await part()).zeros, groups, width, start, outF), groups, outF),
      },
      {
        name: `${module}.scales`,
        dtype: "F16",
        shape: [groups, outF],
        data: async () => f32ToF16Array(sliceColumns((await part()).scales, groups, width, start, outF)),
      },
    );
  }
  return tensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
