import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { chooseDefaultModel, DEFAULT_SERVE_MODEL } from "./commands/serve.js";
import { announcer, createCliLogger, formatEvent, isPretty } from "./log.js";

/** A stream that keeps what is written; `isTTY` as given. */
function capture(isTTY: boolean): Writable & { isTTY: boolean; text(): string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as Writable & { isTTY: boolean; text(): string };
  stream.isTTY = isTTY;
  stream.text = () => chunks.join("");
  return stream;
}

test("a request is one short line: method, path, status, time, tokens, finish reason", () => {
  const line = formatEvent({
    level: 30,
    time: 1,
    msg: "request",
    reqId: "abc",
    method: "POST",
    url: "/v1/chat/completions",
    status: 200,
    durationMs: 1234,
    requestId: "abc",
    engineRequestIds: ["abc-0"],
    promptTokens: 17,
    cachedTokens: 16,
    completionTokens: 64,
    ttftMs: 120,
    finishReasons: ["length"],
  });
  assert.equal(
    line,
    "POST /v1/chat/completions 200 1.23 s · 17 prompt (16 cached) + 64 completion tokens, first after 120 ms, length",
  );
  assert.equal(
    formatEvent({ msg: "request", method: "GET", url: "/health", status: 200, durationMs: 2 }),
    "GET /health 200 2 ms",
  );
  assert.match(
    formatEvent({ msg: "request", method: "POST", url: "/v1/completions", status: 200, clientGone: true }),
    /client gone before the end$/,
  );
});

test("other events: the message, then only the fields it does not already say", () => {
  assert.equal(
    formatEvent({ msg: "KV cache: 10 blocks of 16 tokens", numBlocks: 10, blockSize: 16, extra: "x y" }),
    'KV cache: 10 blocks of 16 tokens extra="x y"',
  );
  assert.equal(formatEvent({ msg: "failed", err: { message: "boom", stack: "..." } }), 'failed err="boom"');
});

test("the listening line names the URL to open", () => {
  const line = formatEvent({
    msg: "listening",
    url: "http://0.0.0.0:8000",
    openUrl: "http://localhost:8000/",
    model: "demo",
    backend: "cpu",
    auth: true,
  });
  assert.equal(
    line,
    "serving demo on the cpu backend (API key required): open http://localhost:8000/ for the chat page, " +
      "or http://localhost:8000/v1 for the OpenAI API",
  );
});

test("auto is pretty on a terminal and JSON elsewhere; the flag overrides", () => {
  assert.equal(isPretty("auto", { isTTY: true }), true);
  assert.equal(isPretty("auto", { isTTY: false }), false);
  assert.equal(isPretty("auto", {}), false);
  assert.equal(isPretty("json", { isTTY: true }), false);
  assert.equal(isPretty("pretty", { isTTY: false }), true);
});

test("pretty: one line per event, no JSON, fastify's own listening line dropped", () => {
  const out = capture(true);
  const logger = createCliLogger({ level: "info", format: "auto", stream: out, colorize: false });
  logger.info({ model: "demo", backend: "cpu" }, "loading model");
  logger.info("Server listening at http://127.0.0.1:8000");
  logger.error({ err: new Error("disk full") }, "shutdown failed");
  logger
    .child({ reqId: "r1" })
    .info({ method: "GET", url: "/health", status: 200, durationMs: 3 }, "request");
  const lines = out.text().trimEnd().split("\n");
  assert.equal(lines.length, 3, out.text());
  assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\] INFO: loading model model=demo backend=cpu$/);
  assert.match(lines[1]!, /ERROR: shutdown failed err="disk full"$/);
  assert.match(lines[2]!, /INFO: GET \/health 200 3 ms$/);
});

test("json: pino's lines, when the stream is not a terminal or with --log-format json", () => {
  for (const [isTTY, format] of [
    [false, "auto"],
    [true, "json"],
  ] as const) {
    const out = capture(isTTY);
    createCliLogger({ level: "info", format, stream: out }).info({ port: 1 }, "hello");
    const line = JSON.parse(out.text()) as { msg: string; port: number; level: number };
    assert.deepEqual([line.msg, line.port, line.level], ["hello", 1, 30]);
  }
});

test("--log-level warn hides info lines but not the announcer's (the listening line); silent hides it", () => {
  const out = capture(true);
  const logger = createCliLogger({ level: "warn", format: "pretty", stream: out, colorize: false });
  logger.info("hidden");
  announcer(logger).info({ url: "http://127.0.0.1:1", model: "demo" }, "listening");
  assert.doesNotMatch(out.text(), /hidden/);
  assert.match(out.text(), /serving demo: open http:\/\/127\.0\.0\.1:1 for the chat page/);

  const quiet = capture(true);
  announcer(createCliLogger({ level: "silent", format: "pretty", stream: quiet })).info("listening");
  assert.equal(quiet.text(), "");
});

test("awq serve with no model: the demo model without a usable GPU, the seed model with one", async () => {
  const noGpu = async () => "no usable CUDA GPU (no NVIDIA driver)";
  const gpu = async () => null;
  assert.deepEqual(await chooseDefaultModel("auto", noGpu), {
    model: "demo",
    backend: "cpu",
    why: "no usable CUDA GPU (no NVIDIA driver)",
  });
  assert.equal((await chooseDefaultModel("auto", gpu)).model, DEFAULT_SERVE_MODEL);
  assert.equal(DEFAULT_SERVE_MODEL, "TheBloke/OpenOrcaxOpenChat-Preview2-13B-AWQ");
  assert.equal((await chooseDefaultModel("cpu", gpu)).model, "demo");
  // --backend cuda asks for the GPU: the seed model, and the load says what is wrong when there is none.
  assert.equal((await chooseDefaultModel("cuda", noGpu)).model, DEFAULT_SERVE_MODEL);
});
