import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq inspect`. */
export function registerInspect(program: Command): void {
  program.command("inspect").description("(not yet implemented)").action(() => {
    throw new Error("awq inspect is not implemented yet");
  });
}
