/** `awq tokenize`: prints the token ids of a text (or of one chat turn) as a JSON array. */
import type { Command } from "commander";
import { resolveModelPath } from "../../hub/resolve.js";
import { ChatFormatter, type ChatMessage } from "../../tokenizer/chat-template.js";
import { Tokenizer } from "../../tokenizer/tokenizer.js";
import { modelFromArgs, textOrStdin } from "../flags.js";

interface TokenizeFlags {
  model?: string;
  revision?: string;
  chat?: boolean;
  template?: string;
  system?: string;
  bos: boolean;
  tokens?: boolean;
}

export function registerTokenize(program: Command): void {
  program
    .command("tokenize")
    .description("print the token ids of TEXT as a JSON array (special tokens in TEXT stay whole)")
    .argument("[model]", 'model folder, hub id or "demo" holding tokenizer.json (or --model)')
    .argument("[text]", "the text, or with --chat the user's message; - reads it from stdin")
    .option("--model <dirOrId>", 'model folder, hub id or "demo" (same as the positional argument)')
    .option("--revision <rev>", "hub branch, tag or commit")
    .option("--chat", "format TEXT as one user message in the model's chat format")
    .option("--template <name|file>", "chat format for --chat: openchat, openchat-gpt4, or a Jinja file")
    .option("--system <text>", "system prompt for --chat")
    .option("--no-bos", "do not put a BOS token first (without --chat)")
    .option("--tokens", "print the token strings beside the ids, one per line")
    .action(async (first: string | undefined, second: string | undefined, flags: TokenizeFlags) => {
      // `awq tokenize MODEL TEXT`, or `awq tokenize --model MODEL TEXT`.
      const [positionalModel, given] = second === undefined ? [undefined, first] : [first, second];
      const model = modelFromArgs("tokenize", positionalModel, flags.model);
      if (given === undefined)
        throw new Error("name the text: awq tokenize MODEL TEXT (- reads it from stdin)");
      const text = await textOrStdin("TEXT", given);
      const dir = await resolveModelPath(model, { revision: flags.revision });
      const tokenizer = await Tokenizer.load(dir);
      if (!flags.chat && (flags.template !== undefined || flags.system !== undefined)) {
        throw new Error("--template and --system only apply with --chat");
      }
      let ids: number[];
      if (flags.chat) {
        const formatter = await ChatFormatter.create(tokenizer, { template: flags.template });
        const messages: ChatMessage[] = [];
        if (flags.system !== undefined) messages.push({ role: "system", content: flags.system });
        messages.push({ role: "user", content: text });
        ids = formatter.apply(messages).tokenIds;
      } else {
        ids = tokenizer.encode(text, { addBos: flags.bos ? undefined : false });
      }
      if (flags.tokens) {
        for (const id of ids) process.stdout.write(`${id}\t${JSON.stringify(tokenizer.idToToken(id))}\n`);
      } else {
        process.stdout.write(`[${ids.join(", ")}]\n`);
      }
    });
}
