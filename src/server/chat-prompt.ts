/**
 * OpenAI chat messages -> prompt token ids through the model's chat format. Shared by /v1/chat/completions and
 * /tokenize so both count a conversation the same way. Errors become 400s naming the message.
 */
import type { Static } from "@sinclair/typebox";
import type { ToolFunction } from "../structured/tool-format.js";
import type { ChatMessage as FormatterMessage } from "../tokenizer/chat-template.js";
import type { ServerContext } from "./context.js";
import { badRequest } from "./errors.js";
import { encodeText } from "./prompt-encoding.js";
import { type ChatMessage, templateRole } from "./schemas.js";

export interface ChatPromptOptions {
  /** add_generation_prompt as sent (default true, false with continue_final_message). */
  addGenerationPrompt?: boolean | null;
  /** vLLM's continue_final_message: the last message stays open, the model continues its text. */
  continueFinalMessage?: boolean | null;
  /** vLLM's add_special_tokens (default false): one more BOS in front of the chat format's own. */
  addSpecialTokens?: boolean | null;
  tools?: ToolFunction[];
}

/** Marks where the final message's text ends in the rendered prompt (continue_final_message). */
const OPEN_END = "\u0000awq-open-end\u0000";

export async function chatPromptTokenIds(
  ctx: ServerContext,
  messages: Static<typeof ChatMessage>[],
  opts: ChatPromptOptions = {},
): Promise<number[]> {
  const continueFinal = opts.continueFinalMessage ?? false;
  if (continueFinal && opts.addGenerationPrompt === true) {
    throw badRequest(
      "continue_final_message and add_generation_prompt cannot both be true: the first keeps the last message " +
        "open for the model to continue, the second starts a new assistant turn after it",
      "continue_final_message",
    );
  }
  const addGenerationPrompt = opts.addGenerationPrompt ?? !continueFinal;
  const named = messages.findIndex((m) => m.name != null && m.name !== "");
  if (named >= 0) {
    throw badRequest(
      `messages[${named}].name is not supported: the chat format has no place for a participant's name`,
      `messages[${named}].name`,
    );
  }
  const flat: FormatterMessage[] = messages.map((message, i) => ({
    role: templateRole(message.role),
    content: messageText(message.content, i),
    ...(message.tool_calls != null ? { tool_calls: message.tool_calls.map(toolCallOf) } : {}),
    ...(message.tool_call_id != null ? { tool_call_id: message.tool_call_id } : {}),
  }));
  if (ctx.chatFormatter === null) {
    throw badRequest(
      `The model in ${ctx.modelPath} has no chat template; start the server with --chat-template NAME|FILE`,
      "messages",
    );
  }
  // The final message is rendered with a marker after its text; everything from the marker on (the turn's
  // end, <|end_of_turn|>) is cut, so the prompt ends inside that message.
  const last = flat[flat.length - 1]!;
  if (continueFinal) flat[flat.length - 1] = { ...last, content: last.content + OPEN_END };
  let prompt: string;
  try {
    prompt = ctx.chatFormatter.formatPrompt(flat, { addGenerationPrompt, tools: opts.tools });
  } catch (err) {
    const message = (err instanceof Error ? err.message : String(err)).replaceAll(OPEN_END, "");
    const param = /^messages(\[\d+\])?(\.[a-z_]+)?/.exec(message)?.[0] ?? "messages";
    throw badRequest(message, param);
  }
  if (continueFinal) {
    const end = prompt.lastIndexOf(OPEN_END);
    if (end < 0) {
      throw badRequest(
        "continue_final_message: the chat template does not render the final message's text as given",
        "continue_final_message",
      );
    }
    prompt = prompt.slice(0, end);
  }
  // formatPrompt + encode is apply(): the same ids, encoded off the event loop.
  const ids = await encodeText(ctx, prompt, "messages");
  const bos = ctx.tokenizer.bosTokenId;
  return opts.addSpecialTokens && bos !== null && bos !== undefined ? [bos, ...ids] : ids;
}

/** An assistant message's tool call as the formatter takes it (nulls dropped). */
function toolCallOf(c: NonNullable<Static<typeof ChatMessage>["tool_calls"]>[number]) {
  return { function: c.function, id: c.id ?? undefined, type: c.type ?? undefined };
}

/** A string, null, or a list of text parts (joined by newlines, as vLLM joins them). */
function messageText(content: Static<typeof ChatMessage>["content"], index: number): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((part, j) => {
      if (part.type !== "text" || typeof part.text !== "string") {
        throw badRequest(
          `Only text content parts are supported; messages[${index}].content[${j}] is of type ${JSON.stringify(part.type)}`,
          `messages[${index}].content[${j}].type`,
        );
      }
      return part.text;
    })
    .join("\n");
}
