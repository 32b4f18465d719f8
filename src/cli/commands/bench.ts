import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq bench`. */
export function registerBench(program: Command): void {
  program.command("bench").description("(not yet implemented)").action(() => {
    throw new Error("awq bench is not implemented yet");
  });
}
