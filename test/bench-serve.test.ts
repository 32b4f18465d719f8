/**
 * `awq bench serve` against a real `awq serve` of the demo model (CPU): a few short prompts on both endpoints,
 * the saved JSON checked against what the server counted, and the errors a user meets (wrong model, no server).
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "./server-harness.js";

const cli = path.join(repoRoot, "dist/src/cli/main.js");
const run = promisify(execFile);
let server: ChildProcess;
let baseUrl: string;
let dir: string;
/** The server's stdout up to its "listening" line. */
let startupLog = "";

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "bench-serve-"));
  server = spawn(
    process.execPath,
    [
      cli,
      "serve",
      "demo",
      "--port",
      "0",
      "--max-model-len",
      "512",
      "--kv-reserve-tokens",
      "64",
      "--async-scheduling",
    ],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let buffered = "";
  const port = await new Promise<number>((resolve, reject) => {
    server.on("exit", (code) => reject(new Error(`awq serve exited with ${code} before listening`)));
    server.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split("\n"))
        if (line.includes('"listening"')) {
          startupLog = buffered;
          resolve(JSON.parse(line).port);
        }
    });
  });
  server.stdout!.removeAllListeners("data");
  server.stdout!.resume();
  baseUrl = `http://127.0.0.1:${port}`;
});

after(async () => {
  server.kill("SIGTERM");
  await new Promise((done) => server.once("exit", done));
  await rm(dir, { recursive: true, force: true });
});

test("the server logs its scheduler's limits, the KV room kept per request (--kv-reserve-tokens) included", () => {
  const line = startupLog.split("\n").find((l) => l.includes("scheduler: up to"));
  assert.ok(line !== undefined, startupLog);
  const entry = JSON.parse(line);
  assert.equal(entry.kvReserveTokens, 64);
  assert.match(entry.msg, /64 decode tokens of KV room kept per request at admission/);
  // --async-scheduling asked for by name: the CPU backend takes chained steps then, and every bench below runs
  // through them (admissions, aborts and finished requests while two steps are in flight).
  assert.equal(entry.asyncScheduling, true);
  assert.match(entry.msg, /decode steps chained \(async scheduling\)/);
});

async function bench(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [
      cli,
      "bench",
      "serve",
      "--base-url",
      baseUrl,
      ...args,
    ]);
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

// biome-ignore lint/suspicious/noExplicitAny: the saved result is vLLM's loose JSON
async function readResult(name: string): Promise<any> {
  return JSON.parse(await readFile(path.join(dir, name), "utf8"));
}

test("completions, ignore_eos: every request succeeds with exactly the asked prompt and output lengths", async () => {
  const { stdout, code, stderr } = await bench([
    ...[
      "--random-input-len",
      "48",
      "--random-output-len",
      "12",
      "--num-prompts",
      "6",
      "--max-concurrency",
      "3",
    ],
    ...["--ignore-eos", "--seed", "4", "--save-result", "--result-dir", dir, "--result-filename", "c.json"],
  ]);
  assert.equal(code, 0, stderr);
  for (const label of [
    "Successful requests:",
    "Request throughput (req/s):",
    "Output token throughput (tok/s):",
    "Mean TTFT (ms):",
    "Median TPOT (ms):",
    "P99 ITL (ms):",
    "Median E2EL (ms):",
    "Preemptions (server):",
  ]) {
    assert.match(stdout, new RegExp(`^${label.replace(/[()/]/g, "\\$&")}\\s+\\d`, "m"), label);
  }
  assert.match(stdout, /^Successful requests:\s+6$/m);
  assert.match(stdout, /^Failed requests:\s+0$/m);
  assert.match(stdout, /^Total input tokens:\s+288$/m);
  assert.match(stdout, /^Total generated tokens:\s+72$/m);
  const r = await readResult("c.json");
  assert.equal(r.completed, 6);
  assert.equal(r.failed, 0);
  assert.equal(r.max_concurrency, 3);
  assert.deepEqual(r.input_lens, [48, 48, 48, 48, 48, 48]);
  assert.deepEqual(r.output_lens, [12, 12, 12, 12, 12, 12]);
  // The server counts the same prompt tokens, plus its BOS.
  assert.deepEqual(r.server_prompt_tokens, [49, 49, 49, 49, 49, 49]);
  assert.ok(r.peak_concurrent_requests === undefined && r.max_concurrent_requests <= 3);
  assert.equal(r.errors.filter((e: string) => e !== "").length, 0);
  // One ITL per text chunk after the first: at most 11 (a chunk may carry two tokens when one ends mid-character).
  for (const itl of r.itls) assert.ok(itl.length >= 1 && itl.length <= 11, String(itl.length));
  assert.ok(r.mean_ttft_ms > 0 && r.p99_tpot_ms > 0 && r.median_e2el_ms >= r.median_ttft_ms);
  assert.equal(r.num_preemptions, 0);
});

test("chat endpoint at a Poisson request rate", async () => {
  const { code, stderr, stdout } = await bench([
    ...["--endpoint", "chat", "--random-input-len", "16", "--random-output-len", "6", "--num-prompts", "4"],
    ...[
      "--request-rate",
      "20",
      "--ignore-eos",
      "--save-result",
      "--result-dir",
      dir,
      "--result-filename",
      "chat.json",
    ],
  ]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^Request rate configured \(RPS\):\s+20\.00$/m);
  const r = await readResult("chat.json");
  assert.equal(r.endpoint_type, "openai-chat");
  assert.equal(r.completed, 4);
  assert.deepEqual(r.output_lens, [6, 6, 6, 6]);
  assert.ok(
    r.server_prompt_tokens.every((n: number) => n > 16),
    "the chat template adds tokens",
  );
});

test("a model the server does not serve stops at the test request, naming the error", async () => {
  const { code, stderr } = await bench([
    "--model",
    "no-such-model",
    "--tokenizer",
    "demo",
    "--num-prompts",
    "2",
  ]);
  assert.equal(code, 1);
  assert.match(stderr, /the test request to http:\/\/127\.0\.0\.1:\d+ failed: HTTP 404/);
});

test("no server at the URL: a clear error, and bad flags are refused by name", async () => {
  const none = await run(process.execPath, [
    cli,
    "bench",
    "serve",
    "--port",
    "1",
    "--tokenizer",
    "demo",
  ]).catch((e) => e);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /cannot reach http:\/\/127\.0\.0\.1:1\/v1\/models/);
  for (const [flag, value, message] of [
    ["--endpoint", "embeddings", /--endpoint must be completions/],
    ["--request-rate", "0", /--request-rate needs requests per second > 0, or inf/],
    ["--random-range-ratio", "1.5", /--random-range-ratio needs a number in \[0, 1\)/],
    ["--dataset-name", "sharegpt", /--dataset-name sharegpt is not supported/],
  ] as const) {
    const r = await bench([flag, value]);
    assert.equal(r.code, 1, flag);
    assert.match(r.stderr, message);
  }
});

test("--help names every default as a user would type it (--request-rate: inf, not null)", async () => {
  const { stdout, code } = await bench(["--help"]);
  assert.equal(code, 0);
  assert.match(stdout, /--request-rate <rps>[\s\S]*?\(default: inf\)/);
  assert.doesNotMatch(stdout, /default: null/);
});
