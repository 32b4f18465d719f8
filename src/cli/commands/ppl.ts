import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq ppl`. */
export function registerPpl(program: Command): void {
  program.command("ppl").description("(not yet implemented)").action(() => {
    throw new Error("awq ppl is not implemented yet");
  });
}
