/** `awq quantize`: fp16 Llama-family model -> AutoAWQ GEMM 4-bit checkpoint (see src/quant/quantize.ts). */
import { readdir } from "node:fs/promises";
import { type Command, Option } from "commander";
import { resolveModelPath } from "../../hub/resolve.js";
import type { QuantMethod } from "../../quant/awq-search.js";
import { QUANT_BACKENDS, type QuantBackendChoice } from "../../quant/create-quant-math.js";
import { DEFAULT_CALIB_FILE, QUANTIZE_DEFAULTS, quantizeModel } from "../../quant/quantize.js";
import { modelFromArgs } from "../flags.js";
import { quantizeReporter } from "../quantize-progress.js";

interface QuantizeFlags {
  model?: string;
  revision?: string;
  out: string;
  calib?: string;
  textField: string;
  samples: string;
  seqlen: string;
  groupSize: string;
  method: string;
  backend: string;
  gptq?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

/**
 * --out must be new or empty: quantizing into a used folder would mix our files with what is there, and
 * --out = --model would overwrite the weights being read.
 */
async function checkOutDir(out: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(out);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code === "ENOTDIR") throw new Error(`--out ${out} is a file; pass a new (or empty) folder`);
    throw new Error(`--out ${out}: ${(err as Error).message}`);
  }
  if (entries.length > 0) {
    const shown = entries.slice(0, 3).join(", ") + (entries.length > 3 ? ", ..." : "");
    throw new Error(
      `--out ${out} already exists and is not empty (${shown}); pass a new folder, or empty this one first`,
    );
  }
}

/** --backend, checked before any work. */
function parseBackend(value: string): QuantBackendChoice {
  if (!(QUANT_BACKENDS as readonly string[]).includes(value))
    throw new Error(`--backend must be cpu, cuda or auto, got "${value}"`);
  return value as QuantBackendChoice;
}

/** A numeric flag parsed by positiveInt later; its default is shown as a number, not a quoted string. */
function numberOption(flags: string, description: string, defaultValue: number): Option {
  return new Option(flags, description).default(String(defaultValue), String(defaultValue));
}

export function registerQuantize(program: Command): void {
  program
    .command("quantize")
    .description(
      "quantize an fp16 Llama-family model to 4-bit AWQ (AutoAWQ GEMM layout: AutoAWQ, vLLM and awq-ts load it)",
    )
    .argument("[model]", "fp16 / bf16 model folder or hub id (or --model)")
    .option("--model <dirOrId>", "fp16 / bf16 model folder or hub id (same as the positional argument)")
    .option("--revision <rev>", "hub branch, tag or commit")
    .requiredOption(
      "--out <dir>",
      "output folder (created; model.safetensors, config.json, quant_config.json, tokenizer)",
    )
    .option(
      "--calib <file>",
      "calibration text: .txt (one sample per paragraph), .jsonl or .parquet (default: the built-in sample of the King James Bible, public domain)",
    )
    .option(
      "--text-field <name>",
      "the text field (.jsonl) or column (.parquet)",
      QUANTIZE_DEFAULTS.textField,
    )
    .addOption(
      numberOption(
        "--samples <n>",
        "calibration texts to use (AutoAWQ's n_samples)",
        QUANTIZE_DEFAULTS.samples,
      ),
    )
    .addOption(
      numberOption(
        "--seqlen <n>",
        "tokens per calibration block; longer texts are skipped",
        QUANTIZE_DEFAULTS.seqlen,
      ),
    )
    .addOption(
      numberOption("--group-size <n>", "input channels per quantization group", QUANTIZE_DEFAULTS.groupSize),
    )
    .option(
      "--method <awq|rtn>",
      "awq (activation-aware scale + clip search) or rtn (plain round-to-nearest)",
      "awq",
    )
    .option(
      "--gptq",
      "also refine the rounding by GPTQ per output column (about 2.4x the time; on the demo model it did not lower perplexity, see docs/benchmarks.md)",
    )
    .option("--no-gptq", "plain AWQ rounding (scale + clip search only, as AutoAWQ): the default")
    .option(
      "--backend <cpu|cuda|auto>",
      "where the search runs: cpu, cuda (our addon, one GPU), or auto (cuda when a GPU is usable, else cpu)",
      "auto",
    )
    .option("--quiet", "no progress bar or messages")
    .option("--verbose", "log the calibration summary and each layer's chosen scales")
    .action(async (positional: string | undefined, flags: QuantizeFlags) => {
      const modelSpec = modelFromArgs("quantize", positional, flags.model);
      const quiet = flags.quiet === true;
      if (flags.method !== "awq" && flags.method !== "rtn")
        throw new Error(`--method must be awq or rtn, got "${flags.method}"`);
      const backend = parseBackend(flags.backend);
      await checkOutDir(flags.out);
      const modelDir = await resolveModelPath(modelSpec, { revision: flags.revision, quiet });
      const progress = quantizeReporter({ quiet });
      const controller = new AbortController();
      const onSigint = () => controller.abort(new Error("interrupted"));
      process.once("SIGINT", onSigint);
      try {
        const summary = await quantizeModel({
          modelDir,
          outDir: flags.out,
          calibFile: flags.calib,
          textField: flags.textField,
          samples: positiveInt(flags.samples, "--samples"),
          seqlen: positiveInt(flags.seqlen, "--seqlen"),
          groupSize: positiveInt(flags.groupSize, "--group-size"),
          method: flags.method as QuantMethod,
          backend,
          search: flags.gptq === undefined ? {} : { gptq: flags.gptq },
          onProgress: (e) => progress.progress(e),
          onLayerDone: (layer, seconds) => progress.layerDone(layer, seconds),
          onLog: (line) => {
            // The CUDA fallback of --backend auto is worth a line even without --verbose.
            if (flags.verbose) process.stderr.write(`${line}\n`);
            else if (!quiet && line.startsWith("CUDA unavailable"))
              process.stderr.write(`awq quantize: ${line}\n`);
          },
          signal: controller.signal,
        });
        progress.stop();
        if (!quiet) {
          process.stderr.write(
            `awq quantize: wrote ${summary.outDir} (${summary.numLayers} layers, ${summary.calibrationTokens} ` +
              `calibration tokens${flags.calib === undefined && flags.method === "awq" ? ` from the built-in text ${DEFAULT_CALIB_FILE}` : ""}) ` +
              `in ${summary.seconds.toFixed(1)} s on the ${summary.backend} backend` +
              (summary.deviceMemory === undefined
                ? ""
                : `, peak GPU memory ${(summary.deviceMemory.peakBytes / 2 ** 30).toFixed(1)} GiB`) +
              "\n",
          );
        }
      } finally {
        progress.stop();
        process.off("SIGINT", onSigint);
      }
    });
}
