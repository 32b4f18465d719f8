/**
 * Tool calls as text, one convention everywhere (the Hermes / Qwen envelope):
 *
 *   <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>
 *
 * The model writes calls in it (grammar-constrained: arguments always match the function's JSON schema), the
 * OpenChat prompt format shows past calls in it, and results go back as `<tool_response>...</tool_response>`.
 * tool_choice "required" / named: the output is only calls; "auto": free text in which `<tool_call>` opens a
 * constrained call.
 */
import type { ConstraintSpec } from "./constraint-spec.js";

export const TOOL_CALL_BEGIN = "<tool_call>";
export const TOOL_CALL_END = "</tool_call>";

export interface ToolFunction {
  name: string;
  description?: string | null;
  /** JSON schema of the arguments object (absent: any object). */
  parameters?: Record<string, unknown> | null;
}

export interface ParsedToolCall {
  name: string;
  /** The arguments as JSON text (OpenAI's `function.arguments`). */
  arguments: string;
}

/** What the model may write: calls of `tools` (one unless parallel); `required` = nothing but calls. */
export function toolCallsSpec(
  tools: readonly ToolFunction[],
  required: boolean,
  parallel: boolean,
): ConstraintSpec {
  return {
    type: "tool_calls",
    required,
    parallel,
    triggers: [TOOL_CALL_BEGIN],
    tags: tools.map((t) => ({
      begin: `${TOOL_CALL_BEGIN}{"name": ${JSON.stringify(t.name)}, "arguments": `,
      schema: t.parameters ?? { type: "object" },
      end: `}${TOOL_CALL_END}`,
    })),
  };
}

/** Splits a reply into its text and its tool calls (a call that does not parse stays in the text). */
export function parseToolCalls(text: string): { content: string; calls: ParsedToolCall[] } {
  const calls: ParsedToolCall[] = [];
  let content = "";
  let at = 0;
  for (;;) {
    const start = text.indexOf(TOOL_CALL_BEGIN, at);
    const end = start < 0 ? -1 : text.indexOf(TOOL_CALL_END, start);
    if (start < 0 || end < 0) break;
    const call = parseCall(text.slice(start + TOOL_CALL_BEGIN.length, end));
    content += text.slice(at, start);
    if (call !== null) calls.push(call);
    else content += text.slice(start, end + TOOL_CALL_END.length);
    at = end + TOOL_CALL_END.length;
  }
  content += text.slice(at);
  return { content: calls.length > 0 ? content.trim() : content, calls };
}

function parseCall(json: string): ParsedToolCall | null {
  try {
    const value = JSON.parse(json) as { name?: unknown; arguments?: unknown };
    if (typeof value.name !== "string") return null;
    return { name: value.name, arguments: JSON.stringify(value.arguments ?? {}) };
  } catch {
    return null;
  }
}

/**
 * Streams a reply: text is passed on as it comes, except what may be the start of a call; each call is
 * handed over whole when its `</tool_call>` arrives.
 */
export class ToolCallStream {
  private buffer = "";
  private inCall = false;

  /** Feeds a text delta; returns the text to send now and the calls completed. */
  push(delta: string): { content: string; calls: ParsedToolCall[] } {
    this.buffer += delta;
    let content = "";
    const calls: ParsedToolCall[] = [];
    for (;;) {
      if (!this.inCall) {
        const start = this.buffer.indexOf(TOOL_CALL_BEGIN);
        if (start < 0) {
          const keep = partialPrefix(this.buffer, TOOL_CALL_BEGIN);
          content += this.buffer.slice(0, this.buffer.length - keep);
          this.buffer = this.buffer.slice(this.buffer.length - keep);
          break;
        }
        content += this.buffer.slice(0, start);
        this.buffer = this.buffer.slice(start);
        this.inCall = true;
      }
      const end = this.buffer.indexOf(TOOL_CALL_END);
      if (end < 0) break;
      const raw = this.buffer.slice(0, end + TOOL_CALL_END.length);
      const call = parseCall(raw.slice(TOOL_CALL_BEGIN.length, end));
      if (call !== null) calls.push(call);
      else content += raw;
      this.buffer = this.buffer.slice(raw.length);
      this.inCall = false;
    }
    return { content, calls };
  }

  /** The end of the reply: whatever is held back (an unfinished call) is text. */
  finish(): string {
    const rest = this.buffer;
    this.buffer = "";
    this.inCall = false;
    return rest;
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of `marker`. */
function partialPrefix(text: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, text.length); n > 0; n--) {
    if (text.endsWith(marker.slice(0, n))) return n;
  }
  return 0;
}

/** OpenChat convention: the system text that lists the tools and says how to call them. */
export function toolsSystemText(tools: readonly ToolFunction[]): string {
  const lines = tools.map((t) =>
    JSON.stringify({
      name: t.name,
      description: t.description ?? undefined,
      parameters: t.parameters ?? undefined,
    }),
  );
  return (
    `You can call functions. To call one, answer with ${TOOL_CALL_BEGIN}{"name": <function name>, ` +
    `"arguments": <arguments object>}${TOOL_CALL_END}. Available functions:\n${lines.join("\n")}`
  );
}

/** OpenChat convention: an assistant turn's calls, appended to its text. */
export function toolCallsText(calls: readonly { name: string; arguments: string }[]): string {
  return calls
    .map((c) => {
      let args: unknown = c.arguments;
      try {
        args = JSON.parse(c.arguments);
      } catch {
        // Not JSON: shown as the string it is.
      }
      return `${TOOL_CALL_BEGIN}${JSON.stringify({ name: c.name, arguments: args })}${TOOL_CALL_END}`;
    })
    .join("\n");
}

/** OpenChat convention: a tool result, sent as a user turn. */
export function toolResultText(content: string, toolCallId: string | null | undefined): string {
  const id = toolCallId ? ` id=${JSON.stringify(toolCallId)}` : "";
  return `<tool_response${id}>${content}</tool_response>`;
}

/** A chat message as the formatters take it (tokenizer/chat-template.ts's ChatMessage). */
interface ToolAwareMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  tool_calls?: { function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

/**
 * The OpenChat convention for tools: the tool list joins the system turn (one is added when there is none),
 * an assistant turn's calls follow its text in the envelope, and a tool result is a user turn holding
 * `<tool_response id="...">result</tool_response>`.
 */
export function openChatToolMessages<M extends ToolAwareMessage>(
  messages: readonly M[],
  tools: readonly ToolFunction[] | undefined,
): M[] {
  const out = messages.map((m): M => {
    if (m.role === "tool") return { ...m, role: "user", content: toolResultText(m.content, m.tool_call_id) };
    if (m.role === "assistant" && m.tool_calls !== undefined && m.tool_calls.length > 0) {
      const calls = toolCallsText(m.tool_calls.map((c) => c.function));
      return { ...m, content: m.content === "" ? calls : `${m.content}\n${calls}` };
    }
    return m;
  });
  if (tools !== undefined && tools.length > 0) {
    const text = toolsSystemText(tools);
    if (out[0]?.role === "system") out[0] = { ...out[0], content: `${out[0].content}\n\n${text}` };
    else out.unshift({ role: "system", content: text } as M);
  }
  return out;
}
