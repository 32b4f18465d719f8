#!/usr/bin/env node
/** The `awq` command: each subcommand lives in commands/<name>.ts and registers itself here. */
import { Command } from "commander";
import { VERSION } from "../version.js";
import { registerBench } from "./commands/bench.js";
import { registerChat } from "./commands/chat.js";
import { registerGenerate } from "./commands/generate.js";
import { registerInspect } from "./commands/inspect.js";
import { registerPpl } from "./commands/ppl.js";
import { registerPull } from "./commands/pull.js";
import { registerQuantize } from "./commands/quantize.js";
import { registerServe } from "./commands/serve.js";
import { registerTokenize } from "./commands/tokenize.js";

const program = new Command()
  .name("awq")
  .description("Run, serve and quantize 4-bit AWQ Llama-family models")
  .version(VERSION)
  // A usage error is one line, prefixed like every other error ("awq: ..."), not buried above the whole
  // help text; subcommands inherit this.
  .configureOutput({ outputError: (message, write) => write(message.replace(/^error: /, "awq: ")) });

for (const register of [
  registerServe,
  registerGenerate,
  registerChat,
  registerTokenize,
  registerPpl,
  registerQuantize,
  registerBench,
  registerPull,
  registerInspect,
]) {
  register(program);
}

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`awq: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
