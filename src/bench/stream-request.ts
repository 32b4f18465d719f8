/**
 * One streamed request of `awq bench serve`, timed as vLLM's benchmark times it: TTFT is the time to the first
 * chunk that carries text, each later text chunk adds one inter-token latency (the gap since the previous text
 * chunk), and the output token count comes from the final usage chunk (`stream_options.include_usage`).
 */
import type { BenchRequestSpec } from "./random-dataset.js";

export type BenchEndpoint = "completions" | "chat";

export interface RequestTarget {
  /** e.g. http://127.0.0.1:8000 (no trailing slash). */
  baseUrl: string;
  endpoint: BenchEndpoint;
  model: string;
  apiKey?: string;
  ignoreEos: boolean;
}

export interface RequestResult {
  success: boolean;
  /** Why it failed (HTTP status and body, an error event, or the network error), "" on success. */
  error: string;
  promptLen: number;
  /** completion_tokens of the usage chunk (0 when the request failed). */
  outputTokens: number;
  /** prompt_tokens of the usage chunk as the server counted them (BOS and chat template included). */
  serverPromptTokens: number;
  generatedText: string;
  /** Milliseconds from sending the request to its first text chunk (0 when none came). */
  ttftMs: number;
  /** Gaps between consecutive text chunks, in milliseconds. */
  itlMs: number[];
  /** Milliseconds from sending the request to the end of its stream. */
  latencyMs: number;
  /** performance.now() when the request was sent. */
  startMs: number;
}

export function endpointPath(endpoint: BenchEndpoint): string {
  return endpoint === "chat" ? "/v1/chat/completions" : "/v1/completions";
}

function requestBody(target: RequestTarget, spec: BenchRequestSpec): Record<string, unknown> {
  const common = {
    model: target.model,
    max_tokens: spec.outputLen,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
    ...(target.ignoreEos ? { ignore_eos: true } : {}),
  };
  return target.endpoint === "chat"
    ? { ...common, messages: [{ role: "user", content: spec.prompt }] }
    : { ...common, prompt: spec.prompt };
}

interface StreamChunk {
  choices?: { text?: string; delta?: { content?: string | null } }[];
  usage?: { completion_tokens?: number; prompt_tokens?: number } | null;
  error?: { message?: string };
}

export async function sendStreamedRequest(
  target: RequestTarget,
  spec: BenchRequestSpec,
): Promise<RequestResult> {
  const result: RequestResult = {
    success: false,
    error: "",
    promptLen: spec.promptLen,
    outputTokens: 0,
    serverPromptTokens: 0,
    generatedText: "",
    ttftMs: 0,
    itlMs: [],
    latencyMs: 0,
    startMs: performance.now(),
  };
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (target.apiKey) headers.authorization = `Bearer ${target.apiKey}`;
  try {
    const res = await fetch(`${target.baseUrl}${endpointPath(target.endpoint)}`, {
      method: "POST",
      headers,
      body: JSON.stringify(requestBody(target, spec)),
    });
    if (res.status !== 200 || res.body === null) {
      result.error = `HTTP ${res.status}: ${(await res.text()).slice(0, 500)}`;
      return finish(result);
    }
    let lastTextMs = 0;
    let done = false;
    let buffered = "";
    const decoder = new TextDecoder();
    for await (const bytes of res.body) {
      buffered += decoder.decode(bytes, { stream: true });
      let cut = buffered.indexOf("\n\n");
      while (cut >= 0) {
        const event = buffered.slice(0, cut).trim();
        buffered = buffered.slice(cut + 2);
        cut = buffered.indexOf("\n\n");
        if (!event.startsWith("data:")) continue;
        const payload = event.slice(5).trim();
        if (payload === "[DONE]") {
          done = true;
          continue;
        }
        const chunk = JSON.parse(payload) as StreamChunk;
        if (chunk.error !== undefined) {
          result.error = `error event: ${chunk.error.message ?? payload}`;
          return finish(result);
        }
        const choice = chunk.choices?.[0];
        const text = choice?.text ?? choice?.delta?.content ?? "";
        if (text !== "") {
          const now = performance.now();
          if (result.generatedText === "" && result.ttftMs === 0) result.ttftMs = now - result.startMs;
          else result.itlMs.push(now - lastTextMs);
          lastTextMs = now;
          result.generatedText += text;
        }
        if (chunk.usage?.completion_tokens !== undefined) result.outputTokens = chunk.usage.completion_tokens;
        if (chunk.usage?.prompt_tokens !== undefined) result.serverPromptTokens = chunk.usage.prompt_tokens;
      }
    }
    if (!done) result.error = "the stream ended without data: [DONE]";
    else if (result.outputTokens === 0) result.error = "no usage chunk with completion_tokens > 0";
    else result.success = true;
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    result.error = `${(err as Error).message}${cause ? ` (${cause})` : ""}`;
  }
  return finish(result);
}

function finish(result: RequestResult): RequestResult {
  result.latencyMs = performance.now() - result.startMs;
  return result;
}
