/** `awq ppl`: perplexity of a text file, with the protocol of ../shared/models/reference.json. */

import { readFile } from "node:fs/promises";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { type BackendChoice, createBackend } from "../../backend/create.js";
import { checkKvCacheDtypeSupported, type KvCacheDtype } from "../../backend/kv-cache-dtype.js";
import { computePerplexity } from "../../eval/perplexity.js";
import { resolveModelPath } from "../../hub/resolve.js";
import { openModel } from "../../model/load.js";
import { Tokenizer } from "../../tokenizer/tokenizer.js";
import {
  backendFlag,
  KV_CACHE_DTYPE_HELP,
  kvCacheDtypeFlag,
  modelFromArgs,
  positiveIntegerFlag,
} from "../flags.js";
import { loadProgress } from "../progress.js";

interface PplFlags {
  model?: string;
  revision?: string;
  textFile: string;
  ctx: number;
  maxWindows?: number;
  backend: BackendChoice;
  kvCacheDtype: KvCacheDtype;
  json?: boolean;
  quiet?: boolean;
}

export function registerPpl(program: Command): void {
  program
    .command("ppl")
    .description(
      "perplexity of a text: non-overlapping windows of --ctx tokens, one BOS at the start of the text",
    )
    .argument("[model]", 'model folder, hub id or "demo" (or --model)')
    .option("--model <dirOrId>", 'model folder, hub id or "demo" (same as the positional argument)')
    .option("--revision <rev>", "hub branch, tag or commit")
    .requiredOption("--text-file <file>", "the text to evaluate (UTF-8)")
    .option("--ctx <n>", "window length in tokens", positiveIntegerFlag("--ctx"), 512)
    .option("--max-windows <n>", "evaluate only the first N windows", positiveIntegerFlag("--max-windows"))
    .option("--backend <name>", "cpu, cuda or auto", backendFlag, "auto")
    .option("--kv-cache-dtype <dtype>", KV_CACHE_DTYPE_HELP, kvCacheDtypeFlag, "auto")
    .option(
      "--json",
      "print one JSON object { perplexity, windows, tokens, ctx, seconds, tokens_per_second }",
    )
    .option("--quiet", "no progress bar")
    .action(async (positional: string | undefined, flags: PplFlags) => {
      const modelSpec = modelFromArgs("ppl", positional, flags.model);
      if (flags.ctx < 2) throw new Error("--ctx must be at least 2");
      const text = await readFile(flags.textFile, "utf8").catch((err: Error) => {
        throw new Error(`--text-file ${flags.textFile}: ${err.message}`);
      });
      const dir = await resolveModelPath(modelSpec, { revision: flags.revision });
      const tokenizer = await Tokenizer.load(dir);
      const tokenIds = tokenizer.encode(text, { addBos: true });
      // Both checked before the weights load: each would otherwise fail (or mislead) only after it.
      if (tokenIds.length < flags.ctx) {
        throw new Error(
          `--text-file ${flags.textFile} has ${tokenIds.length} tokens, fewer than one window of --ctx ${flags.ctx}: ` +
            "pass a longer text or a smaller --ctx",
        );
      }
      const model = await openModel(dir);
      const maxPositions = model.config.maxPositionEmbeddings;
      if (flags.ctx > maxPositions) {
        await model.checkpoint.close();
        throw new Error(
          `--ctx ${flags.ctx} is longer than the model's context (max_position_embeddings ${maxPositions} in config.json)`,
        );
      }
      const backend = await createBackend(flags.backend);
      const bar =
        !flags.quiet && process.stderr.isTTY
          ? new cliProgress.SingleBar(
              {
                format: "ppl [{bar}] {value}/{total} windows | {eta_formatted} left",
                stream: process.stderr,
              },
              cliProgress.Presets.shades_classic,
            )
          : null;
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      try {
        checkKvCacheDtypeSupported(backend.name, flags.kvCacheDtype, model.checkpoint.names());
        const kvLayout = await backend.load(model, {
          maxModelLen: flags.ctx,
          maxNumSeqs: 1,
          maxNumBatchedTokens: flags.ctx,
          blockSize: 16,
          numBlocks: Math.ceil(flags.ctx / 16),
          kvCacheDtype: flags.kvCacheDtype,
          onLoadProgress: loadProgress({ quiet: flags.quiet }),
        });
        const totalWindows = Math.min(
          Math.floor(tokenIds.length / flags.ctx),
          flags.maxWindows ?? Number.POSITIVE_INFINITY,
        );
        if (totalWindows > 0) bar?.start(totalWindows, 0);
        const result = await computePerplexity(backend, tokenIds, {
          ctx: flags.ctx,
          maxWindows: flags.maxWindows,
          kvLayout,
          signal: controller.signal,
          onProgress: (done) => bar?.update(done),
        });
        bar?.stop();
        if (flags.json) {
          const out = {
            perplexity: result.perplexity,
            windows: result.windows,
            tokens: result.tokens,
            ctx: flags.ctx,
            kv_cache_dtype: flags.kvCacheDtype,
            seconds: result.seconds,
            tokens_per_second: result.tokensPerSecond,
          };
          process.stdout.write(`${JSON.stringify(out)}\n`);
        } else {
          process.stdout.write(
            `perplexity ${result.perplexity.toFixed(4)} over ${result.windows} windows of ${flags.ctx} tokens ` +
              `(${result.tokens} tokens) in ${result.seconds.toFixed(1)} s, ${result.tokensPerSecond.toFixed(1)} tokens/s\n`,
          );
        }
      } finally {
        bar?.stop();
        process.removeListener("SIGINT", onSigint);
        await backend.dispose();
        await model.checkpoint.close();
      }
    });
}
