/**
 * The OpenAI-compatible HTTP server (fastify). `buildServer` wires the routes to an EngineClient and a
 * tokenizer and returns the fastify instance unstarted, so tests can `listen({ port: 0 })`.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import pino, { type Logger } from "pino";
import type { EngineClient } from "../engine/types.js";
import type { ChatFormatter } from "../tokenizer/chat-template.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { installAuth } from "./auth.js";
import type { ServerContext } from "./context.js";
import { installCors } from "./cors.js";
import { installErrorHandlers } from "./errors.js";
import { ServerMetrics } from "./metrics.js";
import { installRequestLog } from "./request-log.js";
import { registerChatCompletions } from "./routes/chat-completions.js";
import { registerCompletions } from "./routes/completions.js";
import { registerGenerate } from "./routes/generate.js";
import { registerHealth } from "./routes/health.js";
import { registerModels } from "./routes/models.js";
import { registerTokenize } from "./routes/tokenize.js";

export interface ServerOptions {
  engine: EngineClient;
  tokenizer: Tokenizer;
  /** Null when the model has no chat format: chat requests then get a 400 naming --chat-template. */
  chatFormatter: ChatFormatter | null;
  /** Longest prompt + completion, in tokens. */
  maxModelLen: number;
  /** Names clients may send as `model` (vLLM's --served-model-name); the first is reported back. */
  servedModelNames: string[];
  /** The model folder (shown as `root` in /v1/models). */
  modelPath: string;
  /** Origins browsers may call the API from (vLLM's --allowed-origins); default ["*"], [] = no CORS. */
  allowedOrigins?: string[];
  /** Bearer keys; empty or absent = no auth. */
  apiKeys?: string[];
  /** Most requests waiting in the engine before new ones get 429 (default 1024). */
  maxQueue?: number;
  /** A pino logger (one JSON line per request), or a level for a new one on stdout (default "info"). */
  logger?: Logger;
  logLevel?: string;
  /** Largest request body in bytes (default 32 MiB: long prompts as token ids are big). */
  bodyLimit?: number;
  /**
   * Adds routes outside the API (the chat page at `/`, issue 8). Runs after the API routes, in the same
   * instance, so the page's own routes see the same auth, error format and logging.
   */
  registerWebRoutes?: (app: FastifyInstance, ctx: ServerContext) => void | Promise<void>;
}

declare module "fastify" {
  interface FastifyInstance {
    /** The server's shared state (engine, limits, draining flag), for shutdown and the web routes. */
    awq: ServerContext;
  }
}

const DEFAULT_MAX_QUEUE = 1024;

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  if (opts.servedModelNames.length === 0)
    throw new Error("buildServer: servedModelNames must name the model");
  const logger = opts.logger ?? pino({ level: opts.logLevel ?? "info" });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // request-log.ts writes the one line per request instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 32 * 1024 * 1024,
    return503OnClosing: true,
  });
  const ctx: ServerContext = {
    engine: opts.engine,
    tokenizer: opts.tokenizer,
    chatFormatter: opts.chatFormatter,
    maxModelLen: opts.maxModelLen,
    modelNames: opts.servedModelNames,
    modelPath: opts.modelPath,
    maxQueue: opts.maxQueue ?? DEFAULT_MAX_QUEUE,
    metrics: new ServerMetrics(opts.engine, opts.servedModelNames[0]!),
    draining: false,
    startedAt: Date.now(),
  };
  app.decorate("awq", ctx);
  // Only JSON bodies: a text/plain body is a client mistake worth a 415, not a string to validate.
  app.removeContentTypeParser("text/plain");
  installErrorHandlers(app);
  installRequestLog(app);
  installCors(app, opts.allowedOrigins ?? ["*"]);
  installAuth(app, opts.apiKeys ?? []);
  registerHealth(app, ctx);
  registerModels(app, ctx);
  registerChatCompletions(app, ctx);
  registerCompletions(app, ctx);
  registerTokenize(app, ctx);
  await registerGenerate(app, ctx);
  if (opts.registerWebRoutes) await opts.registerWebRoutes(app, ctx);
  return app;
}

/**
 * Graceful stop: new requests get 503 at once, running ones may finish for `graceMs`, then the engine
 * aborts the rest (their streams end with finish_reason "abort"), and the listener closes.
 */
export async function shutdownServer(app: FastifyInstance, opts: { graceMs: number }): Promise<void> {
  app.awq.draining = true;
  const closed = app.close();
  await app.awq.engine.shutdown({ graceMs: opts.graceMs });
  // Responses end once their requests have finished or been aborted; a stuck socket must not hold exit.
  const forced = setTimeout(() => app.server.closeAllConnections(), 5_000);
  forced.unref();
  await closed;
  clearTimeout(forced);
}
