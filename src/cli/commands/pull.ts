import type { Command } from "commander";
import { pullHubModel } from "../../hub/resolve.js";

/** `awq pull ID`: downloads a hub model into the Hugging Face cache and prints its snapshot folder. */
export function registerPull(program: Command): void {
  program
    .command("pull")
    .description("download a model from the Hugging Face hub into its cache (HF_HUB_CACHE / HF_HOME)")
    .argument("<id>", "hub model id: org/name or org/name@revision")
    .option("--revision <rev>", "branch, tag or commit (default: main, or the @revision in the id)")
    .option("--quiet", "no progress bars")
    .action(async (id: string, options: { revision?: string; quiet?: boolean }) => {
      const snapshotDir = await pullHubModel(id, { revision: options.revision, quiet: options.quiet });
      process.stdout.write(`${snapshotDir}\n`);
    });
}
