import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq quantize`. */
export function registerQuantize(program: Command): void {
  program.command("quantize").description("(not yet implemented)").action(() => {
    throw new Error("awq quantize is not implemented yet");
  });
}
