import type { Command } from "commander";
import { pullHubModel } from "../../hub/resolve.js";
import { modelFromArgs } from "../flags.js";

/** `awq pull ID`: downloads a hub model into the Hugging Face cache and prints its snapshot folder. */
export function registerPull(program: Command): void {
  program
    .command("pull")
    .description("download a model from the Hugging Face hub into its cache (HF_HUB_CACHE / HF_HOME)")
    .argument("[id]", "hub model id: org/name or org/name@revision (or --model)")
    .option("--model <id>", "hub model id (same as the positional argument)")
    .option("--revision <rev>", "branch, tag or commit (default: main, or the @revision in the id)")
    .option("--quiet", "no progress bars")
    .action(
      async (
        positional: string | undefined,
        options: { model?: string; revision?: string; quiet?: boolean },
      ) => {
        const id = modelFromArgs("pull", positional, options.model);
        const snapshotDir = await pullHubModel(id, { revision: options.revision, quiet: options.quiet });
        process.stdout.write(`${snapshotDir}\n`);
      },
    );
}
