/**
 * `awq serve`: loads a model and serves the OpenAI-compatible API (vLLM's flag names), with graceful
 * SIGTERM / SIGINT: stop accepting, let running requests finish for a grace period, abort the rest, exit 0.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import pino from "pino";
import type { BackendChoice } from "../../backend/create.js";
import { LLM } from "../../llm.js";
import {
  buildServer,
  DEFAULT_BODY_LIMIT,
  DEFAULT_CONNECTION_LIMITS,
  type ServerOptions,
  shutdownServer,
} from "../../server/app.js";
import { readApiKeyFile } from "../../server/auth.js";
import { registerWebRoutes } from "../../server/web/routes.js";
import { loadProgress } from "../progress.js";

/** The seed model: what `awq serve` serves with no model named. */
export const DEFAULT_SERVE_MODEL = "TheBloke/OpenOrcaxOpenChat-Preview2-13B-AWQ";

interface ServeFlags {
  model?: string;
  revision?: string;
  host: string;
  port: number;
  servedModelName?: string[];
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  maxQueue: number;
  gpuMemoryUtilization?: number;
  numGpuBlocksOverride?: number;
  apiKey: string[];
  apiKeyFile?: string;
  allowedOrigins?: string[];
  allowedHosts?: string[];
  maxRequestBodyBytes: number;
  timeout: number;
  keepAliveTimeout: number;
  headersTimeout: number;
  requestTimeout: number;
  maxConnections: number;
  chatTemplate?: string;
  backend: BackendChoice;
  enablePrefixCaching: boolean;
  logLevel: string;
  shutdownGracePeriod: number;
}

const integer = (min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidArgumentError(`expected an integer >= ${min}, got "${value}"`);
  return n;
};

const fraction = (value: string) => {
  const n = Number(value);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`expected a number in (0, 1], got "${value}"`);
  return n;
};

const seconds = (value: string) => {
  const n = Number(value);
  if (!(n >= 0) || !Number.isFinite(n))
    throw new InvalidArgumentError(`expected seconds >= 0, got "${value}"`);
  return n;
};

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description(
      "serve a model through an OpenAI-compatible HTTP API (chat, completions, streaming, metrics) and a chat page",
    )
    .argument("[model]", `model folder or hub id (default ${DEFAULT_SERVE_MODEL})`)
    .option("--model <dirOrId>", "model folder or hub id (same as the positional argument)")
    .option("--revision <rev>", "hub branch, tag or commit")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port to listen on (0 = any free port)", integer(0), 8000)
    .option(
      "--served-model-name <name>",
      "a name clients use as `model` (repeatable; default: the model argument)",
      collect,
    )
    .option("--max-model-len <n>", "longest prompt + completion in tokens (default: the model's)", integer(1))
    .option("--max-num-seqs <n>", "most sequences per engine step (default 256)", integer(1))
    .option("--max-num-batched-tokens <n>", "most tokens per engine step", integer(1))
    .option("--max-queue <n>", "waiting requests beyond which new ones get 429", integer(0), 1024)
    .option("--gpu-memory-utilization <f>", "fraction of GPU memory to use (CUDA)", fraction)
    .option(
      "--num-gpu-blocks-override <n>",
      "exact number of KV cache blocks (of 16 tokens), instead of sizing by memory (CUDA and CPU)",
      integer(1),
    )
    .option(
      "--api-key <key>",
      "require this bearer key on /v1/*, /tokenize, /detokenize, /generate (repeatable; or AWQ_API_KEY)",
      collect,
      [],
    )
    .option(
      "--api-key-file <file>",
      "read the bearer keys from FILE, one per line (keeps them out of `ps`; with --api-key, both count)",
    )
    .option(
      "--allowed-origins <origin>",
      'an origin browsers may call the API from besides this server\'s own and loopback ones (repeatable; "*" = any)',
      collect,
    )
    .option(
      "--allowed-hosts <host>",
      'a Host name to answer besides loopback names and --host, while listening on loopback (repeatable; "*" = any)',
      collect,
    )
    .option(
      "--max-request-body-bytes <n>",
      "largest request body; bigger ones get 413",
      integer(1),
      DEFAULT_BODY_LIMIT,
    )
    .option(
      "--timeout <seconds>",
      "close a connection with no traffic either way for this long",
      seconds,
      DEFAULT_CONNECTION_LIMITS.idleTimeoutMs / 1000,
    )
    .option(
      "--keep-alive-timeout <seconds>",
      "close an idle keep-alive connection after this long",
      seconds,
      DEFAULT_CONNECTION_LIMITS.keepAliveTimeoutMs / 1000,
    )
    .option(
      "--headers-timeout <seconds>",
      "the request line and headers must arrive within this",
      seconds,
      DEFAULT_CONNECTION_LIMITS.headersTimeoutMs / 1000,
    )
    .option(
      "--request-timeout <seconds>",
      "the whole request (headers and body, not the response) must arrive within this",
      seconds,
      DEFAULT_CONNECTION_LIMITS.requestTimeoutMs / 1000,
    )
    .option(
      "--max-connections <n>",
      "most open connections; more are refused",
      integer(1),
      DEFAULT_CONNECTION_LIMITS.maxConnections,
    )
    .option("--chat-template <nameOrFile>", "openchat, openchat-gpt4, or a Jinja template file")
    .addOption(
      new Option("--backend <backend>", "compute backend").choices(["cpu", "cuda", "auto"]).default("auto"),
    )
    .option("--no-enable-prefix-caching", "turn off prefix caching")
    .addOption(
      new Option("--log-level <level>", "log level")
        .choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
        .default("info"),
    )
    .option(
      "--shutdown-grace-period <seconds>",
      "on SIGTERM, how long running requests may finish",
      seconds,
      30,
    )
    .action(async (positional: string | undefined, flags: ServeFlags) => {
      await serve(positional, flags);
    });
}

async function serve(positional: string | undefined, flags: ServeFlags): Promise<void> {
  if (positional && flags.model && positional !== flags.model) {
    throw new Error(`two models given: "${positional}" and --model "${flags.model}"; give one`);
  }
  const modelSpec = flags.model ?? positional ?? DEFAULT_SERVE_MODEL;
  const logger = pino({ level: flags.logLevel });
  const apiKeys = [
    ...(flags.apiKey.length > 0 ? flags.apiKey : process.env.AWQ_API_KEY ? [process.env.AWQ_API_KEY] : []),
    ...(flags.apiKeyFile !== undefined ? readApiKeyFile(flags.apiKeyFile) : []),
  ];
  // Timeouts that contradict each other are refused before the model loads (node requires this order).
  if (flags.headersTimeout > flags.requestTimeout && flags.requestTimeout > 0) {
    throw new Error(
      `--headers-timeout ${flags.headersTimeout} must not exceed --request-timeout ${flags.requestTimeout}`,
    );
  }

  // A signal during loading has nothing in flight to wait for.
  let onSignal = (signal: string): void => {
    logger.info({ signal }, "stopped while loading");
    logger.flush();
    process.exit(0);
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));

  logger.info({ model: modelSpec, backend: flags.backend }, "loading model");
  const llm = await LLM.load({
    model: modelSpec,
    revision: flags.revision,
    backend: flags.backend,
    maxModelLen: flags.maxModelLen,
    maxNumSeqs: flags.maxNumSeqs,
    maxNumBatchedTokens: flags.maxNumBatchedTokens,
    enablePrefixCaching: flags.enablePrefixCaching,
    gpuMemoryUtilization: flags.gpuMemoryUtilization,
    numBlocks: flags.numGpuBlocksOverride,
    chatTemplate: flags.chatTemplate,
    onLoadProgress: loadProgress(),
    onBackendFallback: (reason) => logger.warn({ reason }, "CUDA backend unavailable; using the CPU backend"),
  });
  const options: ServerOptions = {
    engine: llm.engine,
    tokenizer: llm.tokenizer,
    chatFormatter: llm.chatFormatter,
    maxModelLen: llm.engine.maxModelLen,
    servedModelNames: flags.servedModelName?.length ? flags.servedModelName : [modelSpec],
    modelPath: llm.modelPath,
    apiKeys,
    allowedOrigins: flags.allowedOrigins ?? [],
    allowedHosts: flags.allowedHosts ?? [],
    listenHost: flags.host,
    bodyLimit: flags.maxRequestBodyBytes,
    connectionLimits: {
      idleTimeoutMs: flags.timeout * 1000,
      keepAliveTimeoutMs: flags.keepAliveTimeout * 1000,
      headersTimeoutMs: flags.headersTimeout * 1000,
      requestTimeoutMs: flags.requestTimeout * 1000,
      maxConnections: flags.maxConnections,
    },
    maxQueue: flags.maxQueue,
    logger,
    // The chat page at `/` (src/server/web, issue 8).
    registerWebRoutes,
  };
  const app = await buildServer(options);

  let stopping = false;
  onSignal = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    const graceMs = flags.shutdownGracePeriod * 1000;
    logger.info(
      { signal, graceMs, ...llm.engine.stats() },
      "shutting down: no new requests, finishing running ones",
    );
    shutdownServer(app, { graceMs })
      .then(() => llm.dispose())
      .then(() => {
        logger.info("stopped");
        logger.flush();
        process.exit(0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, "shutdown failed");
        logger.flush();
        process.exit(1);
      });
  };

  const address = await app.listen({ host: flags.host, port: flags.port });
  const port = (app.server.address() as { port: number }).port;
  const { numBlocks } = llm.engine.stats();
  const kvCacheTokens = numBlocks * llm.engine.blockSize;
  // As vLLM prints it: how many requests of the full context length fit in the KV cache at once.
  logger.info(
    {
      numBlocks,
      blockSize: llm.engine.blockSize,
      kvCacheTokens,
      maxModelLen: options.maxModelLen,
      maxConcurrency: Number((kvCacheTokens / options.maxModelLen).toFixed(2)),
    },
    `KV cache: ${numBlocks} blocks of ${llm.engine.blockSize} tokens = ${kvCacheTokens} tokens; maximum concurrency for ${options.maxModelLen}-token requests: ${(kvCacheTokens / options.maxModelLen).toFixed(2)}x`,
  );
  logger.info(
    {
      url: address,
      port,
      model: options.servedModelNames[0],
      modelPath: llm.modelPath,
      backend: llm.engine.backend.name,
      maxModelLen: options.maxModelLen,
      auth: apiKeys.length > 0,
      ...llm.engine.stats(),
    },
    "listening",
  );
}
