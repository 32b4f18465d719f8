/**
 * The logger of `awq serve`: pino either way. On a terminal (or --log-format pretty) each event is one short
 * human line through pino-pretty ("12:03:04 INFO  POST /v1/chat/completions 200 1.24 s · 17 + 64 tokens"); when
 * stdout is not a terminal (a file, a pipe, a log collector) or with --log-format json, pino's JSON lines.
 */
import type { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import PinoPretty from "pino-pretty";

export const LOG_FORMATS = ["auto", "pretty", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface CliLoggerOptions {
  level: string;
  format: LogFormat;
  /** Where the lines go (default stdout); "auto" is pretty when this is a terminal. */
  stream?: Writable & { isTTY?: boolean };
  /** Colours on the pretty lines (default: the stream is a terminal and NO_COLOR is unset). */
  colorize?: boolean;
}

/** Fields every pino line has, or that the human line already shows another way. */
const SHOWN_ELSEWHERE = new Set(["level", "time", "pid", "hostname", "msg", "reqId"]);

function seconds(ms: unknown): string {
  if (typeof ms !== "number") return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** A value as it reads in a `key=value` pair: strings bare unless they hold spaces, the rest as JSON. */
function shortValue(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) || value === "" ? JSON.stringify(value) : value;
  if (value instanceof Object && "message" in value && typeof value.message === "string") {
    return JSON.stringify(value.message);
  }
  return JSON.stringify(value) ?? String(value);
}

/** The request log line of request-log.ts: `POST /v1/chat/completions 200 1.24 s · 17 + 64 tokens, ...`. */
function requestLine(log: Record<string, unknown>): string {
  const parts = [`${log.method} ${log.url} ${log.status} ${seconds(log.durationMs)}`];
  if (typeof log.promptTokens === "number" && typeof log.completionTokens === "number") {
    const cached =
      typeof log.cachedTokens === "number" && log.cachedTokens > 0 ? ` (${log.cachedTokens} cached)` : "";
    let tokens = `${log.promptTokens} prompt${cached} + ${plural(log.completionTokens, "completion token")}`;
    if (typeof log.ttftMs === "number") tokens += `, first after ${seconds(log.ttftMs)}`;
    const reasons = Array.isArray(log.finishReasons) ? [...new Set(log.finishReasons)].filter(Boolean) : [];
    if (reasons.length > 0) tokens += `, ${reasons.join("/")}`;
    parts.push(tokens);
  }
  if (log.clientGone) parts.push("client gone before the end");
  if (typeof log.user === "string") parts.push(`user ${log.user}`);
  return parts.join(" · ");
}

/** The whole human line after the time and level: the message, then what else the event carries. */
export function formatEvent(log: Record<string, unknown>): string {
  if (log.msg === "request" && typeof log.method === "string") return requestLine(log);
  if (log.msg === "listening" && typeof log.url === "string") {
    const open = typeof log.openUrl === "string" ? log.openUrl : log.url;
    const model = typeof log.model === "string" ? ` ${log.model}` : "";
    const backend = typeof log.backend === "string" ? ` on the ${log.backend} backend` : "";
    const auth = log.auth === true ? " (API key required)" : "";
    return `serving${model}${backend}${auth}: open ${open} for the chat page, or ${open}v1 for the OpenAI API`;
  }
  const msg = typeof log.msg === "string" ? log.msg : "";
  // Fields whose value the message already spells out are not repeated.
  const rest = Object.entries(log)
    .filter(([key, value]) => !SHOWN_ELSEWHERE.has(key) && value !== undefined)
    .filter(
      ([, value]) =>
        !((typeof value === "string" || typeof value === "number") && msg.includes(String(value))),
    )
    .map(([key, value]) => `${key}=${shortValue(value)}`);
  return rest.length > 0 ? `${msg} ${rest.join(" ")}`.trim() : msg;
}

export function isPretty(format: LogFormat, stream: { isTTY?: boolean }): boolean {
  return format === "pretty" || (format === "auto" && stream.isTTY === true);
}

export function createCliLogger(opts: CliLoggerOptions): Logger {
  const stream = opts.stream ?? process.stdout;
  if (!isPretty(opts.format, stream)) {
    return stream === process.stdout ? pino({ level: opts.level }) : pino({ level: opts.level }, stream);
  }
  const pretty = PinoPretty({
    destination: stream === process.stdout ? 1 : stream,
    sync: true,
    colorize: opts.colorize ?? (stream.isTTY === true && !process.env.NO_COLOR),
    translateTime: "SYS:HH:MM:ss",
    ignore: "pid,hostname",
    hideObject: true,
    // err / error are printed by messageFormat as their message: one line per event, no stack.
    errorLikeObjectKeys: [],
    messageFormat: (log) => formatEvent(log),
  });
  return pino(
    {
      level: opts.level,
      hooks: {
        // fastify's own "Server listening at URL" line: serve prints its own, with the URL to open.
        logMethod(args, method) {
          if (typeof args[0] === "string" && args[0].startsWith("Server listening at ")) return;
          method.apply(this, args);
        },
      },
    },
    pretty,
  );
}

/**
 * A logger for the lines that must show even above --log-level info (where the server listens): the same
 * output at level info, unless the level is silent.
 */
export function announcer(logger: Logger): Logger {
  return logger.level === "silent" ? logger : logger.child({}, { level: "info" });
}
