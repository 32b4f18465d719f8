/**
 * Errors of commands with --json: one JSON object on stdout, `{"error": {"message", "type"}}`, and exit 1,
 * for the flag parser's errors as well as the run's, so a script reading stdout always gets JSON.
 */
import type { Command } from "commander";

function writeError(message: string, type: string): void {
  process.stdout.write(`${JSON.stringify({ error: { message, type } })}\n`);
}

/** The command's usage errors (bad flag values, unknown options) as JSON when --json is on the command line. */
export function jsonErrors(command: Command): Command {
  return command.configureOutput({
    outputError: (message, write) => {
      if (!process.argv.includes("--json")) return write(message.replace(/^error: /, "awq: "));
      writeError(message.replace(/^error: /, "").trim(), "usage");
    },
  });
}

/** Wraps a commander action: with --json, a thrown error is printed as JSON (exit code 1) instead. */
export function withJsonErrors<A extends unknown[]>(
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      const command = args.at(-1) as Command;
      if (command?.opts?.().json !== true) throw err;
      writeError(err instanceof Error ? err.message : String(err), err instanceof Error ? err.name : "Error");
      process.exitCode = 1;
    }
  };
}
