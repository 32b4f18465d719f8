import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq tokenize`. */
export function registerTokenize(program: Command): void {
  program.command("tokenize").description("(not yet implemented)").action(() => {
    throw new Error("awq tokenize is not implemented yet");
  });
}
