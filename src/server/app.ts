/**
 * The OpenAI-compatible HTTP server (fastify). `buildServer` wires the routes to an EngineClient and a
 * tokenizer and returns the fastify instance unstarted, so tests can `listen({ port: 0 })`.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import pino, { type Logger } from "pino";
import type { EngineClient } from "../engine/types.js";
import type { ChatFormatter } from "../tokenizer/chat-template.js";
import { EncodePool } from "../tokenizer/encode-pool.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { installAuth } from "./auth.js";
import type { ServerContext } from "./context.js";
import { installCors } from "./cors.js";
import { clientErrorHandler, frameworkErrorHandler, installErrorHandlers } from "./errors.js";
import { installHostGuard } from "./host-guard.js";
import { installJsonBodyParser } from "./json-body.js";
import { ServerMetrics } from "./metrics.js";
import { installRequestLog } from "./request-log.js";
import { RouteTable } from "./route-table.js";
import { registerChatCompletions } from "./routes/chat-completions.js";
import { registerCompletions } from "./routes/completions.js";
import { registerGenerate } from "./routes/generate.js";
import { registerHealth } from "./routes/health.js";
import { registerModels } from "./routes/models.js";
import { registerResponses } from "./routes/responses.js";
import { registerTokenize } from "./routes/tokenize.js";

export interface ServerOptions {
  engine: EngineClient;
  tokenizer: Tokenizer;
  /** Tokenizer workers for request texts; default: a new pool over `tokenizer`, closed with the server. */
  encoder?: EncodePool;
  /**
   * Worker threads of that default pool (--tokenizer-pool-size); 0 encodes every text on the main thread. Default:
   * the machine's cores less one, 1 to 4 (EncodePool.create).
   */
  tokenizerPoolSize?: number;
  /** Null when the model has no chat format: chat requests then get a 400 naming --chat-template. */
  chatFormatter: ChatFormatter | null;
  /** Longest prompt + completion, in tokens. */
  maxModelLen: number;
  /** Names clients may send as `model` (vLLM's --served-model-name); the first is reported back. */
  servedModelNames: string[];
  /** The model folder (shown as `root` in /v1/models). */
  modelPath: string;
  /**
   * Origins browsers may call the API from besides the server's own and loopback ones (--allowed-origins);
   * ["*"] = any origin. Default [] (closed, see cors.ts).
   */
  allowedOrigins?: string[];
  /** The address the server listens on: a loopback one turns on the DNS-rebinding guard (host-guard.ts). */
  listenHost?: string;
  /** Host names accepted besides loopback names and listenHost (--allowed-hosts); ["*"] = any. */
  allowedHosts?: string[];
  /** Bearer keys; empty or absent = no auth. */
  apiKeys?: string[];
  /** Most requests waiting in the engine before new ones get 429 (default 1024). */
  maxQueue?: number;
  /** A pino logger (one JSON line per request), or a level for a new one on stdout (default "info"). */
  logger?: Logger;
  logLevel?: string;
  /** Largest request body in bytes (--max-request-body-bytes; default 2 MiB, TGI's payload limit). */
  bodyLimit?: number;
  /** Connection limits and deadlines (see ConnectionLimits); defaults in DEFAULT_CONNECTION_LIMITS. */
  connectionLimits?: Partial<ConnectionLimits>;
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
    /** Every registered route (method + pattern), for the 405 answer and the tests that walk them all. */
    awqRoutes: RouteTable;
  }
}

const DEFAULT_MAX_QUEUE = 1024;

/** TGI's --payload-limit is 2 MB: far more than any prompt up to max-model-len, as text or as ids. */
export const DEFAULT_BODY_LIMIT = 2 * 1024 * 1024;

/** What stops slow or idle clients from piling up connections (slowloris). All times in milliseconds. */
export interface ConnectionLimits {
  /** The request line and headers must arrive within this (node's headersTimeout). */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this (node's requestTimeout); not the response. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /**
   * A socket with no traffic either way for this long is closed (llama.cpp's --timeout, 600 s). Streams send
   * as tokens come, so only a stalled client or a request stuck this long in the queue hits it.
   */
  idleTimeoutMs: number;
  /** Most open connections; more are refused at accept (node's maxConnections). */
  maxConnections: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 600_000,
  maxConnections: 4096,
};

/** Echo a client's X-Request-Id when it is a sane token (as vLLM does), else make one. */
function requestIdOf(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && /^[\w.:@/+=-]{1,128}$/.test(given) ? given : randomUUID();
}

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  if (opts.servedModelNames.length === 0)
    throw new Error("buildServer: servedModelNames must name the model");
  const logger = opts.logger ?? pino({ level: opts.logLevel ?? "info" });
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...opts.connectionLimits };
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // request-log.ts writes the one line per request instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    return503OnClosing: true,
    genReqId: requestIdOf,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Node enforces the header and request deadlines on a sweep every connectionsCheckingInterval (30 s by
    // default): sweep often enough that a deadline means what it says.
    http: {
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, limits.headersTimeoutMs / 4)),
    },
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
  });
  app.server.maxConnections = limits.maxConnections;
  const ctx: ServerContext = {
    engine: opts.engine,
    tokenizer: opts.tokenizer,
    encoder: opts.encoder ?? (await EncodePool.create(opts.tokenizer, { workers: opts.tokenizerPoolSize })),
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
  app.addHook("onClose", async () => {
    ctx.metrics.close();
    if (!opts.encoder) await ctx.encoder.close();
  });
  // Only JSON bodies (every route): a form or text/plain body is a 415, which also means a web page cannot
  // reach any route with a "simple" cross-origin request that skips the CORS preflight.
  installJsonBodyParser(app);
  const routes = RouteTable.install(app);
  app.decorate("awqRoutes", routes);
  installErrorHandlers(app, routes);
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
  });
  installRequestLog(app);
  installHostGuard(app, opts.listenHost ?? "127.0.0.1", opts.allowedHosts ?? []);
  installCors(app, opts.allowedOrigins ?? []);
  installAuth(app, opts.apiKeys ?? []);
  registerHealth(app, ctx);
  registerModels(app, ctx);
  registerChatCompletions(app, ctx);
  registerCompletions(app, ctx);
  registerResponses(app, ctx);
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
