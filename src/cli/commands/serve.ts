import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq serve`. */
export function registerServe(program: Command): void {
  program.command("serve").description("(not yet implemented)").action(() => {
    throw new Error("awq serve is not implemented yet");
  });
}
