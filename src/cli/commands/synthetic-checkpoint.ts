/** `awq bench synthetic-checkpoint`: a random-weight AWQ checkpoint of a Llama shape on disk, for benchmarks. */
import type { Command } from "commander";
import {
  SYNTHETIC_SHAPES,
  syntheticShape,
  writeSyntheticCheckpoint,
} from "../../model/synthetic-checkpoint.js";
import { integerAtLeastFlag, positiveIntegerFlag } from "../flags.js";
import { createProgressBar } from "../progress.js";

interface SyntheticFlags {
  shape: string;
  out: string;
  shards?: number;
  seed: number;
  quiet?: boolean;
  force?: boolean;
}

export function registerSyntheticCheckpoint(bench: Command): void {
  bench
    .command("synthetic-checkpoint")
    .description(
      "write a random-weight AWQ checkpoint of a Llama shape (AutoAWQ GEMM layout, sharded safetensors, the demo tokenizer) for serving benchmarks without a download",
    )
    .requiredOption("--shape <name>", `model shape: ${Object.keys(SYNTHETIC_SHAPES).join(", ")}`)
    .requiredOption(
      "--out <dir>",
      "folder to write (created; a folder holding a model is refused without --force)",
    )
    .option(
      "--shards <n>",
      "safetensors files (default: as many as keeps each under ~2 GB)",
      positiveIntegerFlag("--shards"),
    )
    .option("--seed <n>", "seed of the random weights", integerAtLeastFlag("--seed", 0), 0)
    .option("--force", "replace the model in --out (its weights, index and config)")
    .option("-q, --quiet", "no progress bar")
    .action(async (flags: SyntheticFlags) => {
      syntheticShape(flags.shape); // refused by name before the progress bar starts
      const started = performance.now();
      const bar = createProgressBar("writing", { total: 0, unit: "bytes", quiet: flags.quiet });
      const result = await writeSyntheticCheckpoint({
        shape: flags.shape,
        out: flags.out,
        shards: flags.shards,
        seed: flags.seed,
        overwrite: flags.force === true,
        onProgress: (written, total) => bar.update(written, total),
      });
      bar.stop();
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(
        `wrote ${flags.shape} to ${result.dir}: ${result.tensors} tensors, ${(result.totalBytes / 1e9).toFixed(2)} GB in ${result.files.length} file(s), ${seconds.toFixed(1)} s\n`,
      );
    });
}
