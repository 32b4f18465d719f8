/**
 * `awq serve`: loads a model and serves the OpenAI-compatible API (vLLM's flag names), with graceful
 * SIGTERM / SIGINT: stop accepting, let running requests finish for a grace period, abort the rest, exit 0.
 */

import { type Command, Option } from "commander";
import type { BackendChoice } from "../../backend/create.js";
import { fp8CapacityNote, type KvCacheDtype } from "../../backend/kv-cache-dtype.js";
import { DEMO_MODEL_ALIAS } from "../../demo-model.js";
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
import {
  collectFlag,
  fractionFlag,
  integerAtLeastFlag,
  KV_CACHE_DTYPE_HELP,
  kvCacheDtypeFlag,
  modelFromArgs,
  portFlag,
  secondsFlag,
} from "../flags.js";
import { announcer, createCliLogger, LOG_FORMATS, type LogFormat } from "../log.js";
import { loadProgress } from "../progress.js";

/** The seed model: what `awq serve` serves with no model named, when there is a usable GPU. */
export const DEFAULT_SERVE_MODEL = "TheBloke/OpenOrcaxOpenChat-Preview2-13B-AWQ";

/**
 * The model `awq serve` serves when none is named: the seed model on a usable GPU; the demo model shipped in
 * the package when the CPU backend would run it (a 13B model on the CPU backend answers a token every many
 * seconds, after a 7 GB download). `cudaProblem` resolves to why CUDA cannot run here, or null when it can.
 */
export async function chooseDefaultModel(
  backend: BackendChoice,
  cudaProblem: () => Promise<string | null>,
): Promise<{ model: string; backend: BackendChoice; why: string }> {
  if (backend === "cpu") {
    return { model: DEMO_MODEL_ALIAS, backend, why: "--backend cpu" };
  }
  if (backend === "cuda") return { model: DEFAULT_SERVE_MODEL, backend, why: "--backend cuda" };
  const problem = await cudaProblem();
  if (problem === null) return { model: DEFAULT_SERVE_MODEL, backend, why: "a usable GPU was found" };
  return { model: DEMO_MODEL_ALIAS, backend: "cpu", why: problem };
}

/** Why an engine asked for --async-scheduling still runs its steps one after the other. */
function noChainReason(engine: { overlapOutputs: boolean }, backend: string): string {
  if (!engine.overlapOutputs) return "AWQ_ENGINE_OVERLAP=0 turns the overlapped step loop off";
  if (backend === "cuda")
    return "this build of the CUDA addon does not take chained steps (rebuild it: npm run build:native)";
  return `the ${backend} backend does not take chained steps`;
}

/** Why the CUDA backend cannot run here (addon, driver, device), or null when it can. */
async function cudaProblemHere(): Promise<string | null> {
  try {
    const { loadNativeAddon } = await import("../../backend/cuda/native-addon.js");
    await loadNativeAddon();
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

interface ServeFlags {
  model?: string;
  revision?: string;
  host: string;
  port: number;
  servedModelName?: string[];
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  kvReserveTokens?: number;
  tokenizerPoolSize?: number;
  maxQueue: number;
  gpuMemoryUtilization?: number;
  numGpuBlocksOverride?: number;
  kvCacheDtype: KvCacheDtype;
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
  tensorParallelSize: number;
  dataParallelSize: number;
  enablePrefixCaching: boolean;
  /** --async-scheduling / --no-async-scheduling; undefined: the engine's default. */
  asyncScheduling?: boolean;
  logLevel: string;
  logFormat: LogFormat;
  shutdownGracePeriod: number;
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description(
      "serve a model through an OpenAI-compatible HTTP API (chat, completions, streaming, metrics) and a chat page",
    )
    .argument(
      "[model]",
      `model folder, hub id or "demo" (default: ${DEFAULT_SERVE_MODEL} on a usable GPU, else the demo model)`,
    )
    .option("--model <dirOrId>", "model folder or hub id (same as the positional argument)")
    .option("--revision <rev>", "hub branch, tag or commit")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port to listen on (0 = any free port)", portFlag, 8000)
    .option(
      "--served-model-name <name>",
      "a name clients use as `model` (repeatable; default: the model argument)",
      collectFlag,
    )
    .option(
      "--max-model-len <n>",
      "longest prompt + completion in tokens (default: the model's)",
      integerAtLeastFlag("--max-model-len", 1),
    )
    .option(
      "--max-num-seqs <n>",
      "most sequences per engine step (default 256)",
      integerAtLeastFlag("--max-num-seqs", 1),
    )
    .option(
      "--max-num-batched-tokens <n>",
      "most tokens per engine step (default as vLLM: 8192 on a GPU of >= 70 GiB other than the A100, else max(2048, max-num-seqs))",
      integerAtLeastFlag("--max-num-batched-tokens", 1),
    )
    .option(
      "--kv-reserve-tokens <n>",
      "decode tokens of KV room each running request keeps (at most its max_tokens left) before a new one is admitted; 0 admits while the prompt fits, as vLLM, and preempts when the cache runs out (default 256)",
      integerAtLeastFlag("--kv-reserve-tokens", 0),
    )
    .option(
      "--tokenizer-pool-size <n>",
      "worker threads that tokenize long request texts (as vLLM's flag; 0 tokenizes on the main thread; default: cores - 1, 1 to 4)",
      integerAtLeastFlag("--tokenizer-pool-size", 0),
    )
    .option(
      "--max-queue <n>",
      "waiting requests beyond which new ones get 429",
      integerAtLeastFlag("--max-queue", 0),
      1024,
    )
    .option(
      "--gpu-memory-utilization <f>",
      "fraction of GPU memory to use (CUDA)",
      fractionFlag("--gpu-memory-utilization"),
    )
    .option(
      "--num-gpu-blocks-override <n>",
      "exact number of KV cache blocks (of 16 tokens), instead of sizing by memory (CUDA and CPU)",
      integerAtLeastFlag("--num-gpu-blocks-override", 1),
    )
    .option(
      "--api-key <key>",
      "require this bearer key on /v1/*, /tokenize, /detokenize, /generate (repeatable; or AWQ_API_KEY)",
      collectFlag,
      [],
    )
    .option(
      "--api-key-file <file>",
      "read the bearer keys from FILE, one per line (keeps them out of `ps`; with --api-key, both count)",
    )
    .option(
      "--allowed-origins <origin>",
      'an origin browsers may call the API from besides this server\'s own and loopback ones (repeatable; "*" = any)',
      collectFlag,
    )
    .option(
      "--allowed-hosts <host>",
      'a Host name to answer besides loopback names and --host, while listening on loopback (repeatable; "*" = any)',
      collectFlag,
    )
    .option(
      "--max-request-body-bytes <n>",
      "largest request body; bigger ones get 413",
      integerAtLeastFlag("--max-request-body-bytes", 1),
      DEFAULT_BODY_LIMIT,
    )
    .option(
      "--timeout <seconds>",
      "close a connection with no traffic either way for this long",
      secondsFlag("--timeout"),
      DEFAULT_CONNECTION_LIMITS.idleTimeoutMs / 1000,
    )
    .option(
      "--keep-alive-timeout <seconds>",
      "close an idle keep-alive connection after this long",
      secondsFlag("--keep-alive-timeout"),
      DEFAULT_CONNECTION_LIMITS.keepAliveTimeoutMs / 1000,
    )
    .option(
      "--headers-timeout <seconds>",
      "the request line and headers must arrive within this",
      secondsFlag("--headers-timeout"),
      DEFAULT_CONNECTION_LIMITS.headersTimeoutMs / 1000,
    )
    .option(
      "--request-timeout <seconds>",
      "the whole request (headers and body, not the response) must arrive within this",
      secondsFlag("--request-timeout"),
      DEFAULT_CONNECTION_LIMITS.requestTimeoutMs / 1000,
    )
    .option(
      "--max-connections <n>",
      "most open connections; more are refused",
      integerAtLeastFlag("--max-connections", 1),
      DEFAULT_CONNECTION_LIMITS.maxConnections,
    )
    .option("--chat-template <nameOrFile>", "openchat, openchat-gpt4, or a Jinja template file")
    .option("--kv-cache-dtype <dtype>", KV_CACHE_DTYPE_HELP, kvCacheDtypeFlag, "auto")
    .addOption(
      new Option("--backend <backend>", "compute backend").choices(["cpu", "cuda", "auto"]).default("auto"),
    )
    .option(
      "--tensor-parallel-size <n>",
      "ranks each matrix is split over (CPU backend: the reference of the sharding; CUDA needs the NCCL build)",
      integerAtLeastFlag("--tensor-parallel-size", 1),
      1,
    )
    .option(
      "--data-parallel-size <n>",
      "engine replicas, each with its own KV cache, behind this server (routed by prefix affinity and load)",
      integerAtLeastFlag("--data-parallel-size", 1),
      1,
    )
    .option("--no-enable-prefix-caching", "turn off prefix caching")
    .option(
      "--async-scheduling",
      "launch each steady decode step before the step it continues has returned, so the GPU never waits for the " +
        "host (default: the backend's; CUDA takes them unless AWQ_CUDA_CHAINED=0, the CPU backend only with this flag)",
    )
    .option("--no-async-scheduling", "launch each step only after the step before it has returned")
    .addOption(
      new Option("--log-level <level>", "log level")
        .choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
        .default("info"),
    )
    .addOption(
      new Option(
        "--log-format <format>",
        "pretty: one human line per event; json: pino's JSON lines; auto: pretty on a terminal, else json",
      )
        .choices(LOG_FORMATS)
        .default("auto"),
    )
    .option(
      "--shutdown-grace-period <seconds>",
      "on SIGTERM, how long running requests may finish",
      secondsFlag("--shutdown-grace-period"),
      30,
    )
    .action(async (positional: string | undefined, flags: ServeFlags) => {
      await serve(positional, flags);
    });
}

async function serve(positional: string | undefined, flags: ServeFlags): Promise<void> {
  const named = positional !== undefined || flags.model !== undefined;
  const logger = createCliLogger({ level: flags.logLevel, format: flags.logFormat });
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

  let modelSpec: string;
  let backend = flags.backend;
  if (named) {
    modelSpec = modelFromArgs("serve", positional, flags.model);
  } else {
    const choice = await chooseDefaultModel(flags.backend, cudaProblemHere);
    modelSpec = choice.model;
    backend = choice.backend;
    // Said even at --log-level warn: the user did not pick this model.
    if (choice.model === DEMO_MODEL_ALIAS) {
      logger.warn(
        { model: modelSpec, reason: choice.why },
        `no model named (${choice.why}): serving the demo model, 12.9M parameters, for trying the server; name a model to serve another`,
      );
    } else {
      logger.info(
        { model: modelSpec, reason: choice.why },
        `no model named: serving ${modelSpec} (${choice.why})`,
      );
    }
  }
  logger.info({ model: modelSpec, backend }, "loading model");
  const llm = await LLM.load({
    model: modelSpec,
    revision: flags.revision,
    backend,
    maxModelLen: flags.maxModelLen,
    maxNumSeqs: flags.maxNumSeqs,
    maxNumBatchedTokens: flags.maxNumBatchedTokens,
    kvReserveTokens: flags.kvReserveTokens,
    usageContext: "server",
    enablePrefixCaching: flags.enablePrefixCaching,
    asyncScheduling: flags.asyncScheduling,
    gpuMemoryUtilization: flags.gpuMemoryUtilization,
    numBlocks: flags.numGpuBlocksOverride,
    kvCacheDtype: flags.kvCacheDtype,
    chatTemplate: flags.chatTemplate,
    tensorParallelSize: flags.tensorParallelSize,
    dataParallelSize: flags.dataParallelSize,
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
    tokenizerPoolSize: flags.tokenizerPoolSize,
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
  // What to type in a browser: a wildcard address is reached as localhost.
  const openUrl = /^(0\.0\.0\.0|::|\[::\])$/.test(flags.host)
    ? `http://localhost:${port}/`
    : `${address.replace(/\/$/, "")}/`;
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
      kvCacheDtype: flags.kvCacheDtype,
    },
    `KV cache: ${numBlocks} blocks of ${llm.engine.blockSize} tokens = ${kvCacheTokens} tokens; maximum concurrency for ${options.maxModelLen}-token requests: ${(kvCacheTokens / options.maxModelLen).toFixed(2)}x${fp8CapacityNote(llm.engine.backend.name, flags.kvCacheDtype, kvCacheTokens)}`,
  );
  logger.info(
    {
      maxNumSeqs: llm.engine.maxNumSeqs,
      maxNumBatchedTokens: llm.engine.maxNumBatchedTokens,
      kvReserveTokens: llm.engine.kvReserveTokens,
      asyncScheduling: llm.engine.chainsSteps,
    },
    `scheduler: up to ${llm.engine.maxNumSeqs} sequences and ${llm.engine.maxNumBatchedTokens} tokens a step, ` +
      `${llm.engine.kvReserveTokens} decode tokens of KV room kept per request at admission, ` +
      (llm.engine.chainsSteps
        ? "decode steps chained (async scheduling)"
        : `decode steps one after the other${flags.asyncScheduling === true ? ` (--async-scheduling: ${noChainReason(llm.engine, llm.engine.backend.name)})` : ""}`),
  );
  announcer(logger).info(
    {
      url: address,
      openUrl,
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
