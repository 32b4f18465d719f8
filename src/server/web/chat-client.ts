/**
 * One streamed chat completion against our OpenAI-compatible API (`stream: true` with usage), with timing.
 * Uses only fetch, TextDecoder and performance, so the page uses it and Node tests can run it as is.
 * Aborting `signal` closes the connection, which makes the server abort the engine request.
 */
import { SseParser } from "./sse-parse.js";

export interface ChatTurn {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatRequest {
  /** Where the API lives ("" = this page's origin). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <key>` when non-empty. */
  apiKey: string;
  messages: ChatTurn[];
  /** Sampling fields in the API's snake_case (temperature, top_p, max_tokens, ...). */
  params: Record<string, unknown>;
  signal?: AbortSignal;
  /** Called with each piece of text as it arrives. */
  onText: (delta: string) => void;
}

export interface ChatOutcome {
  text: string;
  /** "stop", "length", ... ; "abort" when the caller stopped it; null if the stream ended without one. */
  finishReason: string | null;
  /** From the final usage chunk; when stopped early, the number of streamed chunks that carried text. */
  completionTokens: number;
  /** Milliseconds from sending to the first text; null when none came. */
  timeToFirstTokenMs: number | null;
  /** Completion tokens after the first, per second of generation after the first; null with < 2 tokens. */
  tokensPerSecond: number | null;
  totalMs: number;
}

/** A non-2xx answer, or an error the server sent inside the stream. */
export class ChatApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "ChatApiError";
  }
}

/**
 * The server could not be reached, or the connection broke mid-answer: no HTTP answer to show. `partial`
 * tells the two apart (text had arrived).
 */
export class ChatNetworkError extends Error {
  constructor(
    message: string,
    readonly partial: boolean,
  ) {
    super(message);
    this.name = "ChatNetworkError";
  }
}

interface StreamChunk {
  choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: { completion_tokens?: number } | null;
  error?: { message?: string; code?: string | null };
}

export async function streamChat(req: ChatRequest): Promise<ChatOutcome> {
  const started = performance.now();
  const headers: Record<string, string> = { "content-type": "application/json", accept: "text/event-stream" };
  if (req.apiKey !== "") headers.authorization = `Bearer ${req.apiKey}`;
  const body = {
    ...req.params,
    messages: req.messages,
    stream: true,
    stream_options: { include_usage: true },
  };
  const url = `${req.baseUrl}/v1/chat/completions`;
  let response: Response;
  try {
    response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: req.signal });
  } catch (err) {
    if (req.signal?.aborted) throw err;
    // fetch says only "Failed to fetch" / "fetch failed": the request never got an HTTP answer.
    throw new ChatNetworkError(`the connection failed (${describe(err)})`, false);
  }
  if (!response.ok || response.body === null) throw await errorOf(response);

  let text = "";
  let finishReason: string | null = null;
  let usageTokens: number | null = null;
  let textChunks = 0;
  let firstAt: number | null = null;
  let lastAt = started;
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  const handle = (data: string) => {
    if (data === "[DONE]") return;
    const chunk = JSON.parse(data) as StreamChunk;
    if (chunk.error)
      throw new ChatApiError(500, chunk.error.message ?? "generation failed", chunk.error.code ?? null);
    if (chunk.usage?.completion_tokens !== undefined) usageTokens = chunk.usage.completion_tokens;
    const choice = chunk.choices?.[0];
    if (!choice) return;
    const delta = choice.delta?.content ?? "";
    if (delta !== "") {
      lastAt = performance.now();
      firstAt ??= lastAt;
      textChunks++;
      text += delta;
      req.onText(delta);
    }
    if (choice.finish_reason) finishReason = choice.finish_reason;
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      const events = done ? parser.finish() : parser.push(decoder.decode(value, { stream: true }));
      for (const event of events) handle(event.data);
      if (done) break;
    }
  } catch (err) {
    if (!req.signal?.aborted) {
      if (err instanceof ChatApiError || err instanceof SyntaxError) throw err;
      throw new ChatNetworkError(`the connection broke mid-answer (${describe(err)})`, text !== "");
    }
    finishReason = "abort";
    await reader.cancel().catch(() => {});
  }
  const completionTokens = usageTokens ?? textChunks;
  const generationMs = firstAt === null ? 0 : lastAt - firstAt;
  return {
    text,
    finishReason,
    completionTokens,
    timeToFirstTokenMs: firstAt === null ? null : firstAt - started,
    tokensPerSecond:
      completionTokens > 1 && generationMs > 0 ? ((completionTokens - 1) * 1000) / generationMs : null,
    totalMs: performance.now() - started,
  };
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message;
  const message = err instanceof Error ? err.message : String(err);
  return detail ? `${message}: ${detail}` : message;
}

/** The OpenAI error body's message, or the status line when the body is not one. */
async function errorOf(response: Response): Promise<ChatApiError> {
  const raw = await response.text().catch(() => "");
  try {
    const parsed = JSON.parse(raw) as StreamChunk;
    if (parsed.error?.message)
      return new ChatApiError(response.status, parsed.error.message, parsed.error.code ?? null);
  } catch {
    // not JSON: fall through
  }
  return new ChatApiError(response.status, `HTTP ${response.status} ${response.statusText}`.trim());
}
