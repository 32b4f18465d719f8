/**
 * Server-sent events on a raw Node response (OpenAI streaming: `data: {json}\n\n` ... `data: [DONE]\n\n`),
 * with back-pressure (a slow reader holds the writer, not the server's memory) and disconnect detection.
 */
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { FastifyReply } from "fastify";
import { engineFailure } from "./errors.js";
import type { ChoiceEvent, ChoiceSource } from "./generation.js";

/** Calls `onGone` once if the client goes away before the response has been completely sent. */
export function onClientGone(reply: FastifyReply, onGone: () => void): () => void {
  const res = reply.raw;
  const listener = () => {
    if (!res.writableFinished) onGone();
  };
  res.once("close", listener);
  return () => res.off("close", listener);
}

export class SseWriter {
  private closed = false;

  private constructor(private readonly res: ServerResponse) {
    res.once("close", () => {
      this.closed = true;
    });
  }

  /** Takes the response over from fastify and sends the event-stream headers. */
  static start(reply: FastifyReply, extraHeaders: Record<string, string> = {}): SseWriter {
    // Headers hooks already set on the reply (CORS) would be lost with the hijack: carry them over.
    const hookHeaders = reply.getHeaders() as OutgoingHttpHeaders;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...hookHeaders,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...extraHeaders,
    });
    res.flushHeaders();
    return new SseWriter(res);
  }

  /** Whether the client is still there. */
  get open(): boolean {
    return !this.closed && !this.res.destroyed;
  }

  /** Sends one event; waits while the socket's buffer is full. */
  async send(data: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  async write(chunk: string): Promise<void> {
    if (!this.open) return;
    if (this.res.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off("drain", done);
        this.res.off("close", done);
        resolve();
      };
      this.res.once("drain", done);
      this.res.once("close", done);
    });
  }

  /** Sends `data: [DONE]` and ends the response. */
  async done(): Promise<void> {
    await this.write("data: [DONE]\n\n");
    this.end();
  }

  end(): void {
    if (this.open) this.res.end();
  }
}

/**
 * The choice events a streaming route turns into chunks, while the client is still there: a choice the engine
 * failed is sent as an OpenAI error event (the other choices go on) instead of being yielded.
 */
export async function* streamedChoices(job: ChoiceSource, sse: SseWriter): AsyncGenerator<ChoiceEvent> {
  for await (const event of job.events()) {
    if (!sse.open) return;
    if (event.output.finishReason === "error") {
      await sse.send(engineFailure(event.output).body());
      continue;
    }
    yield event;
  }
}

/** What `stream_options` asks for: a usage chunk at the end, and (vLLM) usage on every chunk. */
export interface StreamUsage {
  final: boolean;
  /** `{ usage }` to spread into a chunk of one choice (`output` null: before its first token), or `{}`. */
  ofChunk(output: { promptTokens: number; completionTokens: number } | null): {
    usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  };
}

/**
 * `stream_options` -> StreamUsage. With `continuous_usage_stats` (needs `include_usage`, as in vLLM) each
 * chunk carries its choice's counts so far; `promptTokens` is the prompt's length for chunks sent before
 * the engine's first output.
 */
export function usageOptions(
  options: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null | undefined,
  promptTokens: number,
): StreamUsage {
  const final = options?.include_usage ?? false;
  const continuous = final && (options?.continuous_usage_stats ?? false);
  return {
    final,
    ofChunk(output) {
      if (!continuous) return {};
      const prompt = output?.promptTokens ?? promptTokens;
      const completion = output?.completionTokens ?? 0;
      return {
        usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
      };
    },
  };
}
