/**
 * Chat messages -> prompt text and token ids. Built-in OpenChat formats ("Llama2 V1" and the GPT4 variant
 * from TheBloke's card), or a Jinja `chat_template` (the model's own, or one the user gives) rendered by
 * @huggingface/jinja. Which one applies: the user's choice, else the model's chat_template, else OpenChat
 * when the vocabulary has `<|end_of_turn|>`.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { Template } from "@huggingface/jinja";
import { openChatToolMessages, type ToolFunction } from "../structured/tool-format.js";
import { END_OF_TURN_TOKEN, type Tokenizer } from "./tokenizer.js";

export type ChatRole = "system" | "user" | "assistant" | "tool";

export interface ChatMessage {
  role: ChatRole;
  content: string;
  /** An assistant turn's tool calls (OpenAI's shape; Jinja templates get `arguments` as an object). */
  tool_calls?: { id?: string; type?: string; function: { name: string; arguments: string } }[];
  /** A tool result's call id (role "tool"). */
  tool_call_id?: string;
}

export interface ChatFormatterOptions {
  /** A built-in name ("openchat", "openchat-gpt4"), a path to a Jinja file, or an inline Jinja template. */
  template?: string;
}

export interface ApplyOptions {
  /** End with the assistant's turn opener ("Assistant:") so the model writes the reply. Default true. */
  addGenerationPrompt?: boolean;
  /**
   * Functions the model may call: Jinja templates get them as `tools` (as transformers passes them, each
   * `{type: "function", function}`); the OpenChat formats list them in the system turn (tool-format.ts).
   */
  tools?: ToolFunction[];
}

export interface FormattedChat {
  prompt: string;
  tokenIds: number[];
}

const ROLES: readonly ChatRole[] = ["system", "user", "assistant", "tool"];

/** OpenChat's role prefixes, one set per built-in format. */
const OPENCHAT_FORMATS: Record<string, { user: string; assistant: string }> = {
  openchat: { user: "User:", assistant: "Assistant:" },
  "openchat-gpt4": { user: "GPT4 User:", assistant: "GPT4 Assistant:" },
};

export const BUILTIN_TEMPLATE_NAMES: readonly string[] = Object.keys(OPENCHAT_FORMATS);

type Renderer = (messages: ChatMessage[], addGenerationPrompt: boolean, tools?: ToolFunction[]) => string;

export class ChatFormatter {
  private constructor(
    private readonly tokenizer: Tokenizer,
    /** "openchat", "openchat-gpt4", "model" (the model's chat_template), or the user's file / "inline". */
    readonly name: string,
    private readonly render: Renderer,
    private readonly checkSystemFirst: boolean,
  ) {}

  static async create(tokenizer: Tokenizer, opts: ChatFormatterOptions = {}): Promise<ChatFormatter> {
    const choice = opts.template;
    if (choice !== undefined) {
      if (choice in OPENCHAT_FORMATS) return ChatFormatter.openChat(tokenizer, choice);
      if (choice.includes("{%") || choice.includes("{{")) {
        return ChatFormatter.jinja(tokenizer, "inline", choice);
      }
      if (existsSync(choice)) return ChatFormatter.jinja(tokenizer, choice, await readFile(choice, "utf8"));
      throw new Error(
        `unknown chat template "${choice}": expected one of ${BUILTIN_TEMPLATE_NAMES.join(", ")}, ` +
          "or the path of an existing Jinja template file",
      );
    }
    if (tokenizer.chatTemplate !== null)
      return ChatFormatter.jinja(tokenizer, "model", tokenizer.chatTemplate);
    if (tokenizer.tokenToId(END_OF_TURN_TOKEN) !== undefined)
      return ChatFormatter.openChat(tokenizer, "openchat");
    throw new Error(
      `The model in ${tokenizer.dir} has no chat_template and no ${END_OF_TURN_TOKEN} token, so its chat ` +
        `format is unknown: choose one (${BUILTIN_TEMPLATE_NAMES.join(", ")}) or give a Jinja template file`,
    );
  }

  /** Formats the conversation; the ids start with exactly one BOS (when the model uses one). */
  apply(messages: ChatMessage[], opts: ApplyOptions = {}): FormattedChat {
    const prompt = this.formatPrompt(messages, opts);
    // A template that writes bos_token itself gets no second one: encode() adds BOS only when absent.
    return { prompt, tokenIds: this.tokenizer.encode(prompt) };
  }

  /**
   * The prompt text alone (cheap), for callers that encode it elsewhere (the server's tokenizer workers);
   * `tokenizer.encode(formatPrompt(m))` is exactly `apply(m).tokenIds`.
   */
  formatPrompt(messages: ChatMessage[], opts: ApplyOptions = {}): string {
    validateMessages(messages, this.checkSystemFirst);
    // The OpenChat formats know no tools: calls, results and the tool list become text (tool-format.ts).
    const builtin = this.name in OPENCHAT_FORMATS;
    const shown = builtin ? openChatToolMessages(messages, opts.tools) : messages;
    return this.render(shown, opts.addGenerationPrompt ?? true, builtin ? undefined : opts.tools);
  }

  private static openChat(tokenizer: Tokenizer, name: string): ChatFormatter {
    const format = OPENCHAT_FORMATS[name]!;
    const render: Renderer = (messages, addGenerationPrompt) => {
      let prompt = "";
      for (const message of messages) {
        if (message.role === "system") prompt += `${message.content}${END_OF_TURN_TOKEN}`;
        else
          prompt += `${format[message.role === "tool" ? "user" : message.role]} ${message.content}${END_OF_TURN_TOKEN}`;
      }
      if (addGenerationPrompt) prompt += format.assistant;
      return prompt;
    };
    return new ChatFormatter(tokenizer, name, render, true);
  }

  private static jinja(tokenizer: Tokenizer, name: string, source: string): ChatFormatter {
    let template: Template;
    try {
      template = new Template(source);
    } catch (err) {
      throw new Error(`Chat template ${name} does not parse as Jinja: ${(err as Error).message}`);
    }
    const render: Renderer = (messages, addGenerationPrompt, tools) => {
      try {
        return template.render({
          messages: messages.map(jinjaMessage),
          ...(tools !== undefined ? { tools: tools.map((f) => ({ type: "function", function: f })) } : {}),
          add_generation_prompt: addGenerationPrompt,
          bos_token: tokenizer.bosToken ?? "",
          eos_token: tokenizer.eosToken ?? "",
          // raise_exception(message) is @huggingface/jinja's built-in: it throws an Error with the message.
        });
      } catch (err) {
        throw new Error(`Chat template ${name}: ${(err as Error).message}`);
      }
    };
    return new ChatFormatter(tokenizer, name, render, false);
  }
}

/** A message as chat templates expect it: tool call arguments as objects (transformers' convention). */
function jinjaMessage(m: ChatMessage): Record<string, unknown> {
  if (m.tool_calls === undefined) return { ...m };
  const tool_calls = m.tool_calls.map((c) => {
    let args: unknown = c.function.arguments;
    try {
      args = JSON.parse(c.function.arguments);
    } catch {
      // Not JSON: the template gets the string.
    }
    return { ...c, type: c.type ?? "function", function: { name: c.function.name, arguments: args } };
  });
  return { ...m, tool_calls };
}

function validateMessages(messages: ChatMessage[], checkSystemFirst: boolean): void {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new Error("messages must be a non-empty list of { role, content }");
  }
  messages.forEach((message, index) => {
    if (!ROLES.includes(message?.role)) {
      throw new Error(
        `messages[${index}].role is ${JSON.stringify(message?.role)}: expected ${ROLES.join(", ")}`,
      );
    }
    if (typeof message.content !== "string") {
      throw new Error(`messages[${index}].content must be a string`);
    }
    if (checkSystemFirst && message.role === "system" && index !== 0) {
      throw new Error(`messages[${index}] is a system message: only the first message may be one`);
    }
  });
}
