import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq generate`. */
export function registerGenerate(program: Command): void {
  program.command("generate").description("(not yet implemented)").action(() => {
    throw new Error("awq generate is not implemented yet");
  });
}
