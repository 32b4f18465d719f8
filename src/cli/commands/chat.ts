/**
 * `awq chat`: a terminal conversation with a model, streamed as it is generated. Slash commands change the
 * system prompt and sampling; Ctrl-C stops the answer being written (not the program); Ctrl-C twice at an
 * empty prompt, Ctrl-D or /quit leaves.
 */
import readline from "node:readline";
import { type Command, Option } from "commander";
import type { BackendChoice } from "../../backend/create.js";
import { InvalidParamError, resolveSamplingParams } from "../../engine/sampling-params.js";
import type { SamplingParams } from "../../engine/types.js";
import { LLM } from "../../llm.js";
import type { ChatMessage } from "../../tokenizer/chat-template.js";
import { integerFlag, modelFromArgs, numberFlag, positiveIntegerFlag } from "../flags.js";
import { loadProgress } from "../progress.js";
import { applyParamAssignments, describeParams, SETTABLE_PARAMS } from "./chat-params.js";

interface ChatFlags {
  model?: string;
  revision?: string;
  system?: string;
  template?: string;
  backend: BackendChoice;
  temperature?: number;
  topP?: number;
  topK?: number;
  maxTokens: number;
  maxModelLen?: number;
  quiet?: boolean;
}

const HELP = `Commands:
  /system TEXT       set the system prompt (/system alone shows it; /system - removes it)
  /reset             forget the conversation (the system prompt and settings stay)
  /params k=v ...    sampling settings: ${SETTABLE_PARAMS.join(", ")}
                     (/params alone shows them; k=default unsets one; stop takes a comma list)
  /help              this text
  /quit              leave (also Ctrl-D, or Ctrl-C twice at an empty prompt)
Ctrl-C while an answer is being written stops that answer.`;

export function registerChat(program: Command): void {
  program
    .command("chat")
    .description("chat with a model in the terminal (streamed; /help lists the commands)")
    .argument("[model]", 'model folder, hub id or "demo" (or --model)')
    .option("--model <dirOrId>", 'model folder, hub id or "demo" (same as the positional argument)')
    .option("--revision <rev>", "hub branch, tag or commit")
    .option("--system <text>", "system prompt")
    .option("--template <nameOrFile>", "chat template: openchat, openchat-gpt4, or a Jinja file")
    .addOption(
      new Option("--backend <backend>", "compute backend").choices(["cpu", "cuda", "auto"]).default("auto"),
    )
    .option(
      "--temperature <t>",
      "sampling temperature; 0 = greedy (default 1, as vLLM and the server)",
      numberFlag("--temperature"),
    )
    .option("--top-p <p>", "nucleus sampling mass (default 1 = off)", numberFlag("--top-p"))
    .option("--top-k <k>", "keep the k most likely tokens (default 0 = off)", integerFlag("--top-k"))
    .option("--max-tokens <n>", "longest answer in tokens", positiveIntegerFlag("--max-tokens"), 512)
    .option(
      "--max-model-len <n>",
      "context length (default: the model's)",
      positiveIntegerFlag("--max-model-len"),
    )
    .option("-q, --quiet", "no progress bar and no per-answer statistics")
    .action(async (positional: string | undefined, flags: ChatFlags) => {
      await chat(modelFromArgs("chat", positional, flags.model), flags);
    });
}

/**
 * The sampling settings the conversation starts with, checked by the engine's rules before any loading. Unset
 * ones are the engine's defaults (temperature 1, top-p 1: vLLM's), the same as `awq generate` and the server.
 */
export function initialParams(
  flags: Pick<ChatFlags, "temperature" | "topP" | "topK" | "maxTokens">,
): SamplingParams {
  const params: SamplingParams = {
    maxTokens: flags.maxTokens,
    ...(flags.temperature !== undefined ? { temperature: flags.temperature } : {}),
    ...(flags.topP !== undefined ? { topP: flags.topP } : {}),
    ...(flags.topK !== undefined ? { topK: flags.topK } : {}),
  };
  try {
    resolveSamplingParams(params);
  } catch (err) {
    // Name the flag the user typed, not the API field.
    if (err instanceof InvalidParamError)
      throw new Error(err.message.replace(err.param, `--${err.param.replace(/_/g, "-")}`));
    throw err;
  }
  return params;
}

async function chat(model: string, flags: ChatFlags): Promise<void> {
  const params = initialParams(flags);
  const llm = await LLM.load({
    model,
    revision: flags.revision,
    backend: flags.backend,
    chatTemplate: flags.template,
    maxModelLen: flags.maxModelLen,
    onLoadProgress: loadProgress({ quiet: flags.quiet }),
  });
  try {
    if (llm.chatFormatter === null) {
      throw new Error(
        `the model in ${llm.modelPath} has no chat format; pass --template openchat|openchat-gpt4|FILE`,
      );
    }
    const session = new ChatSession(llm, flags, params);
    await session.run();
  } finally {
    await llm.dispose();
  }
}

class ChatSession {
  private system: string | null;
  private params: SamplingParams;
  private readonly history: ChatMessage[] = [];
  private readonly rl: readline.Interface;
  private readonly terminal: boolean;
  /** Bold prompt and dim statistics on a terminal, unless NO_COLOR is set. */
  private readonly color: boolean;
  private readonly out = process.stdout;
  /** The answer being written, if any: Ctrl-C aborts it. */
  private answering: AbortController | null = null;
  /** Set by a Ctrl-C at an empty prompt; a second one quits. */
  private quitArmed = false;
  private closed = false;
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;

  constructor(
    private readonly llm: LLM,
    private readonly flags: ChatFlags,
    params: SamplingParams,
  ) {
    this.system = flags.system ?? null;
    this.params = params;
    this.terminal = process.stdin.isTTY === true && this.out.isTTY === true;
    this.rl = readline.createInterface({
      input: process.stdin,
      output: this.out,
      terminal: this.terminal,
      historySize: 200,
    });
    this.color = this.terminal && !process.env.NO_COLOR;
    this.rl.setPrompt(this.color ? "\x1b[1m>\x1b[0m " : "> ");
  }

  async run(): Promise<void> {
    this.rl.on("line", (line) => {
      this.lines.push(line);
      this.wake?.();
    });
    this.rl.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
    // A terminal in raw mode gives Ctrl-C to readline; otherwise (cooked mode while answering, or piped
    // input) it arrives as a signal.
    this.rl.on("SIGINT", () => this.interrupt());
    const onSignal = () => this.interrupt();
    process.on("SIGINT", onSignal);
    try {
      this.say(
        `Chatting with ${this.llm.modelPath} (${this.llm.engine.backend.name}). /help lists the commands.`,
      );
      for (;;) {
        if (!this.closed) this.rl.prompt();
        const line = await this.nextLine();
        if (line === null) break;
        this.quitArmed = false;
        if (line.trim() === "") continue;
        if (line.trimStart().startsWith("/")) {
          if (!this.command(line.trim())) break;
          continue;
        }
        await this.answer(line);
      }
    } finally {
      process.off("SIGINT", onSignal);
      if (!this.closed) this.rl.close();
      this.out.write("\n");
    }
  }

  private nextLine(): Promise<string | null> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.lines.length > 0) resolve(this.lines.shift()!);
        else if (this.closed) resolve(null);
        else return;
        this.wake = null;
      };
      this.wake = check;
      check();
    });
  }

  private interrupt(): void {
    if (this.answering !== null) {
      this.answering.abort();
      return;
    }
    if (this.rl.line !== "") {
      // Like a shell: Ctrl-C abandons the line being typed.
      this.rl.write(null, { ctrl: true, name: "e" });
      this.rl.write(null, { ctrl: true, name: "u" });
      this.out.write("\n");
      this.rl.prompt();
      return;
    }
    if (this.quitArmed) {
      this.rl.close();
      return;
    }
    this.quitArmed = true;
    this.out.write("\n(press Ctrl-C again to quit, or type /quit)\n");
    this.rl.prompt();
  }

  /** Runs a slash command; false means quit. */
  private command(line: string): boolean {
    const [name = "", ...rest] = line.split(/\s+/);
    const arg = line.slice(name.length).trim();
    switch (name.toLowerCase()) {
      case "/quit":
      case "/exit":
        return false;
      case "/help":
        this.say(HELP);
        break;
      case "/reset":
        this.history.length = 0;
        this.say("Conversation cleared.");
        break;
      case "/system":
        if (arg === "")
          this.say(this.system === null ? "No system prompt." : `System prompt: ${this.system}`);
        else if (arg === "-") {
          this.system = null;
          this.say("System prompt removed.");
        } else {
          this.system = arg;
          this.say("System prompt set.");
        }
        break;
      case "/params":
        if (rest.length === 0) {
          this.say(`Sampling:\n${describeParams(this.params)}`);
          break;
        }
        try {
          this.params = applyParamAssignments(this.params, arg);
          this.say(`Sampling:\n${describeParams(this.params)}`);
        } catch (err) {
          this.say(`/params: ${(err as Error).message}`);
        }
        break;
      default:
        this.say(`Unknown command ${name}. /help lists the commands.`);
    }
    return true;
  }

  private async answer(question: string): Promise<void> {
    const fitted = this.fitConversation(question);
    if (fitted === null) return;
    const { messages, maxTokens } = fitted;
    const controller = new AbortController();
    this.answering = controller;
    this.setAnswerMode(true);
    const started = performance.now();
    let firstAt: number | null = null;
    let lastAt = started;
    let text = "";
    let completionTokens = 0;
    let finishReason: string | null = null;
    let error: string | undefined;
    try {
      const stream = this.llm.stream(
        { messages },
        { ...this.params, maxTokens },
        { signal: controller.signal },
      );
      for await (const output of stream) {
        if (output.textDelta !== "") {
          lastAt = performance.now();
          firstAt ??= lastAt;
          // Leading whitespace after "Assistant:" is part of the format, not of the answer.
          const delta = text === "" ? output.textDelta.trimStart() : output.textDelta;
          text += output.textDelta;
          this.out.write(delta);
        }
        completionTokens = output.completionTokens;
        if (output.finished) {
          finishReason = output.finishReason;
          error = output.error;
        }
      }
    } catch (err) {
      error = (err as Error).message;
    } finally {
      this.answering = null;
      this.setAnswerMode(false);
    }
    this.out.write("\n");
    if (error !== undefined && finishReason !== "abort") {
      this.say(`error: ${error}`);
      return;
    }
    // A stopped answer stays in the history: the conversation goes on from what was said.
    this.history.push({ role: "user", content: question }, { role: "assistant", content: text.trim() });
    const stopped = finishReason === "abort" || controller.signal.aborted;
    if (!this.flags.quiet) {
      const parts = [`${completionTokens} tokens`];
      if (firstAt !== null) parts.push(`TTFT ${Math.round(firstAt - started)} ms`);
      if (completionTokens > 1 && lastAt > (firstAt ?? lastAt)) {
        parts.push(`${(((completionTokens - 1) * 1000) / (lastAt - firstAt!)).toFixed(1)} tokens/s`);
      }
      if (stopped) parts.push("stopped");
      else if (finishReason === "length") parts.push("max tokens reached");
      this.say(this.color ? `\x1b[2m[${parts.join(" · ")}]\x1b[0m` : `[${parts.join(" · ")}]`);
    } else if (stopped) {
      this.say("[stopped]");
    }
  }

  /**
   * The messages to send and the room left to answer. The oldest exchanges are dropped when the
   * conversation no longer fits the context; null (after saying why) when even the question alone is too long.
   */
  private fitConversation(question: string): { messages: ChatMessage[]; maxTokens: number } | null {
    const maxModelLen = this.llm.engine.maxModelLen;
    const wanted = this.params.maxTokens ?? maxModelLen;
    // Keep room for a useful answer even when the user asked for a long one.
    const reserve = Math.min(wanted, Math.max(16, Math.floor(maxModelLen / 4)));
    let dropped = 0;
    for (;;) {
      const messages: ChatMessage[] = [
        ...(this.system !== null ? [{ role: "system" as const, content: this.system }] : []),
        ...this.history.slice(dropped),
        { role: "user", content: question },
      ];
      let promptLength: number;
      try {
        promptLength = this.llm.applyChatTemplate(messages).length;
      } catch (err) {
        this.say(`error: ${(err as Error).message}`);
        return null;
      }
      if (promptLength + reserve <= maxModelLen) {
        if (dropped > 0) {
          this.history.splice(0, dropped);
          this.say(`(dropped the ${dropped / 2} oldest exchange(s) to fit the ${maxModelLen}-token context)`);
        }
        return { messages, maxTokens: Math.min(wanted, maxModelLen - promptLength) };
      }
      if (dropped >= this.history.length) {
        this.say(
          `error: the question needs ${promptLength} tokens and the context holds ${maxModelLen}; ` +
            "shorten it (or the /system prompt), or restart with a larger --max-model-len",
        );
        return null;
      }
      dropped += 2;
    }
  }

  /**
   * While an answer is written, readline must not echo or redraw over it: its input is paused and the
   * terminal goes back to cooked mode, where Ctrl-C becomes SIGINT (handled above) and typing waits.
   */
  private setAnswerMode(answering: boolean): void {
    if (answering) {
      this.rl.pause();
      if (this.terminal) process.stdin.setRawMode(false);
    } else {
      if (this.terminal && !this.closed) process.stdin.setRawMode(true);
      if (!this.closed) this.rl.resume();
    }
  }

  private say(text: string): void {
    this.out.write(`${text}\n`);
  }
}
