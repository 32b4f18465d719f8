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

export async function chatPromptTokenIds(
  ctx: ServerContext,
  messages: Static<typeof ChatMessage>[],
  addGenerationPrompt: boolean,
  tools?: ToolFunction[],
): Promise<number[]> {
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
  let prompt: string;
  try {
    prompt = ctx.chatFormatter.formatPrompt(flat, { addGenerationPrompt, tools });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const param = /^messages(\[\d+\])?(\.[a-z_]+)?/.exec(message)?.[0] ?? "messages";
    throw badRequest(message, param);
  }
  // formatPrompt + encode is apply(): the same ids, encoded off the event loop.
  return encodeText(ctx, prompt, "messages");
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
