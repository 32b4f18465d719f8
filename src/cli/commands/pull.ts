import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq pull`. */
export function registerPull(program: Command): void {
  program.command("pull").description("(not yet implemented)").action(() => {
    throw new Error("awq pull is not implemented yet");
  });
}
