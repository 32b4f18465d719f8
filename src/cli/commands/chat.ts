import type { Command } from "commander";

/** PLACEHOLDER: replaced by the owner of `awq chat`. */
export function registerChat(program: Command): void {
  program.command("chat").description("(not yet implemented)").action(() => {
    throw new Error("awq chat is not implemented yet");
  });
}
