/** `awq generate`, `awq ppl` and `awq serve` on the demo model (CPU backend), as a user runs them. */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const cli = `${repoRoot}dist/src/cli/main.js`;
const model = `${repoRoot}models/tiny-chat-awq`;
const devText = `${repoRoot}../shared/data/demo-dev.txt`;

function awq(args: string[]) {
  return run(process.execPath, [cli, ...args], { cwd: repoRoot, timeout: 60_000 });
}

/** Greedy, 8 tokens of a fixed prompt on the CPU: the --json and the streaming run must agree. */
const GREEDY_8 = [
  "generate",
  "--model",
  model,
  "--prompt",
  "In the beginning God created",
  "--temperature",
  "0",
  "--max-tokens",
  "8",
  "--backend",
  "cpu",
];

test("awq generate --json prints the text, generated ids, finish reason and usage", async () => {
  const { stdout } = await awq([...GREEDY_8, "--json"]);
  const out = JSON.parse(stdout) as {
    text: string;
    token_ids: number[];
    finish_reason: string;
    usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  };
  assert.equal(out.token_ids.length, 8);
  assert.equal(out.finish_reason, "length");
  // "<s> In the beginning God created": BOS + 5 tokens.
  assert.deepEqual(out.usage, { prompt_tokens: 6, completion_tokens: 8, total_tokens: 14 });
  assert.ok(out.text.length > 0);

  // Streaming mode prints the same text.
  const streamed = await awq(GREEDY_8);
  assert.equal(streamed.stdout, `${out.text}\n`);
});

test("awq generate --chat stops at the end of turn; a bad flag names itself", async () => {
  const { stdout } = await awq([
    "generate",
    "--model",
    model,
    "--prompt",
    "Say something wise.",
    "--chat",
    "--temperature",
    "0",
    "--backend",
    "cpu",
    "--json",
  ]);
  const out = JSON.parse(stdout) as { token_ids: number[]; finish_reason: string; text: string };
  assert.equal(out.finish_reason, "stop");
  assert.equal(out.token_ids.at(-1), 32000);
  assert.ok(!out.text.includes("<|end_of_turn|>"));
  await assert.rejects(
    awq(["generate", "--model", model, "--prompt", "x", "--top-p", "2", "--backend", "cpu"]),
    (err: { stderr: string; code: number }) => err.code === 1 && /--top-p must be/.test(err.stderr),
  );
});

test("awq ppl --json over two windows", async (t) => {
  if (!existsSync(devText)) return t.skip("needs ../shared/data/demo-dev.txt");
  const { stdout } = await awq([
    "ppl",
    "--model",
    model,
    "--text-file",
    devText,
    "--ctx",
    "128",
    "--max-windows",
    "2",
    "--backend",
    "cpu",
    "--json",
  ]);
  const out = JSON.parse(stdout) as { perplexity: number; windows: number; tokens: number; ctx: number };
  assert.equal(out.windows, 2);
  assert.equal(out.tokens, 256);
  assert.equal(out.ctx, 128);
  assert.ok(out.perplexity > 1 && out.perplexity < 1000, `perplexity ${out.perplexity}`);
});

test("awq serve with no model and no usable GPU: says so, serves the demo; --log-level warn keeps the listening line", {
  timeout: 90_000,
}, async () => {
  // AWQ_NATIVE_ADDON points at nothing: no CUDA here, whatever machine runs the test.
  const server = spawn(process.execPath, [cli, "serve", "--port", "0", "--log-level", "warn"], {
    cwd: repoRoot,
    env: { ...process.env, AWQ_NATIVE_ADDON: `${repoRoot}no-such-addon.node` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    // stdout is a pipe, not a terminal: pino's JSON lines.
    const events = await new Promise<{ level: number; msg: string; [key: string]: unknown }[]>(
      (resolve, reject) => {
        const seen: { level: number; msg: string }[] = [];
        let buffered = "";
        server.stdout.on("data", (d) => {
          buffered += d;
          const lines = buffered.split("\n");
          buffered = lines.pop() ?? "";
          for (const line of lines) {
            const event = JSON.parse(line) as { level: number; msg: string };
            seen.push(event);
            if (event.msg === "listening") resolve(seen);
          }
        });
        server.on("exit", (code) => reject(new Error(`awq serve exited with ${code}`)));
      },
    );
    const [notice, listening] = [events[0]!, events.at(-1)!];
    assert.equal(notice.level, 40);
    assert.match(
      notice.msg,
      /^no model named \(the CUDA addon .*no-such-addon\.node.*\): serving the demo model/,
    );
    assert.equal(listening.model, "demo");
    assert.equal(listening.backend, "cpu");
    assert.match(String(listening.openUrl), /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(events.length, 2, "warn: only the notice and the listening line");
  } finally {
    server.kill("SIGTERM");
  }
});
