/** What every route needs from the server: the engine seam, the tokenizer, limits, metrics, admission. */
import type { EngineClient } from "../engine/types.js";
import type { ChatFormatter } from "../tokenizer/chat-template.js";
import type { EncodePool } from "../tokenizer/encode-pool.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { ApiError } from "./errors.js";
import type { ServerMetrics } from "./metrics.js";

export interface ServerContext {
  engine: EngineClient;
  tokenizer: Tokenizer;
  /** Encodes request texts off the event loop (server/prompt-encoding.ts wraps it with the length check). */
  encoder: EncodePool;
  /** Null when the model has no chat format (then chat requests get a 400 saying so). */
  chatFormatter: ChatFormatter | null;
  maxModelLen: number;
  /** Names clients may use in `model`; the first is the one reported back. */
  modelNames: string[];
  /** Where the weights came from (shown as `root` in /v1/models). */
  modelPath: string;
  /** Most requests allowed to wait in the engine's queue before new ones get 429. */
  maxQueue: number;
  metrics: ServerMetrics;
  /** Set once shutdown begins: new generation requests get 503. */
  draining: boolean;
  startedAt: number;
}

/** Seconds a client should wait before retrying an overloaded or draining server. */
const RETRY_AFTER_SECONDS = 1;

/** 404 unless `model` is absent or one of the served names. */
export function checkModel(ctx: ServerContext, model: string | null | undefined): string {
  if (model === undefined || model === null || model === "") return ctx.modelNames[0]!;
  if (!ctx.modelNames.includes(model)) {
    throw new ApiError(
      404,
      `The model '${model}' does not exist; this server serves ${ctx.modelNames.map((n) => `'${n}'`).join(", ")}`,
      "model",
      "invalid_request_error",
      "model_not_found",
    );
  }
  return model;
}

/** Refuses new work while draining (503) or while the engine's waiting queue is full (429). */
export function admit(ctx: ServerContext, numRequests: number): void {
  const headers = { "retry-after": String(RETRY_AFTER_SECONDS) };
  if (ctx.draining) {
    throw new ApiError(
      503,
      "The server is shutting down; retry on another replica",
      null,
      "server_error",
      "shutting_down",
      headers,
    );
  }
  // The queue holds at most --max-queue requests, except that an empty queue always takes one request (so
  // --max-queue 0 means "never wait behind another request"); a request of n choices counts n.
  const waiting = ctx.engine.stats().waiting;
  const room = Math.max(ctx.maxQueue, waiting === 0 ? 1 : 0) - waiting;
  if (numRequests > room) {
    throw new ApiError(
      429,
      `The server is overloaded: ${waiting} requests are waiting and this one needs room for ${numRequests} (--max-queue ${ctx.maxQueue}); retry after ${RETRY_AFTER_SECONDS}s`,
      null,
      "rate_limit_error",
      "queue_full",
      headers,
    );
  }
}
