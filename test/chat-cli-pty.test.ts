/**
 * `awq chat` through a real pseudo-terminal (util-linux `script` runs it on a pty; we write keystrokes to
 * it): a question gets a streamed answer, Ctrl-C stops a long answer without quitting, the next question
 * still works, and Ctrl-C twice at an empty prompt quits with status 0.
 */
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const SCRIPT = "/usr/bin/script";
const cli = path.join(repoRoot, "dist/src/cli/main.js");
const model = path.join(repoRoot, "models/tiny-chat-awq");
const skip = existsSync(SCRIPT) ? false : `needs ${SCRIPT} (util-linux) to run the CLI on a pseudo-terminal`;

/** Terminal output as text: colours and cursor movements removed, CRs dropped. */
function plainText(raw: string): string {
  return raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
}

class PtySession {
  private raw = "";
  /** Output before this offset has been matched already. */
  private mark = 0;
  readonly exited: Promise<number | null>;

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on("data", (chunk: Buffer) => {
      this.raw += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      this.raw += chunk.toString("utf8");
    });
    this.exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  }

  get text(): string {
    return plainText(this.raw);
  }

  type(keys: string): void {
    this.child.stdin.write(keys);
  }

  /** Waits for `pattern` in the output after the previous match; returns the text up to and including it. */
  async expect(pattern: RegExp, ms = 20_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const rest = this.text.slice(this.mark);
      const match = pattern.exec(rest);
      if (match) {
        const upTo = rest.slice(0, match.index + match[0].length);
        this.mark += upTo.length;
        return upTo;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${pattern} in the terminal; it shows:\n${rest.slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }
}

const shellQuote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

test("awq chat on a terminal: answer, Ctrl-C stops a long answer, chat goes on, Ctrl-C twice quits", {
  skip,
  timeout: 90_000,
}, async () => {
  const command = [
    "stty cols 120 rows 40;",
    "exec node",
    shellQuote(cli),
    "chat --model",
    shellQuote(model),
    "--backend cpu --max-model-len 1024 --temperature 0 --max-tokens 24",
  ].join(" ");
  const child = spawn(SCRIPT, ["-qefc", command, "/dev/null"], {
    cwd: repoRoot,
    env: { ...process.env, TERM: "xterm-256color", NO_COLOR: "1" },
  });
  const pty = new PtySession(child);
  try {
    const banner = await pty.expect(/\/help lists the commands\.\n/, 40_000);
    assert.match(banner, /loading weights \|.*100%/, "a progress bar while the weights load");
    await pty.expect(/> $/);

    pty.type("Tell me a fortune.\r");
    const first = await pty.expect(/\[(\d+) tokens · TTFT \d+ ms[^\]]*\]/);
    const answer = first.replace(/^[\s\S]*Tell me a fortune\.\n/, "").replace(/\[\d+ tokens[\s\S]*$/, "");
    assert.ok(
      answer.trim().length > 0,
      `an answer was written before the statistics: ${JSON.stringify(first)}`,
    );
    assert.doesNotMatch(first, /stopped/);

    await pty.expect(/> $/);
    pty.type("/params ignore_eos=true max_tokens=900 temperature=0.8 seed=7\r");
    await pty.expect(/max_tokens=900\n[\s\S]*> $/);
    pty.type("Tell me a long story.\r");
    await pty.expect(/Tell me a long story\.\n[\s\S]{40}/);
    const interruptedAt = Date.now();
    pty.type("\x03");
    const stoppedStats = await pty.expect(/\[(\d+) tokens[^\]]*stopped\]/, 10_000);
    const stopMs = Date.now() - interruptedAt;
    const stoppedTokens = Number(/\[(\d+) tokens[^\]]*stopped\]/.exec(stoppedStats)![1]);
    assert.ok(stoppedTokens > 0 && stoppedTokens < 900, `stopped after ${stoppedTokens} of 900 tokens`);
    assert.ok(stopMs < 5_000, `Ctrl-C took effect in ${stopMs} ms`);

    await pty.expect(/> $/);
    pty.type("/params ignore_eos=false max_tokens=16\r");
    await pty.expect(/max_tokens=16\n[\s\S]*> $/);
    pty.type("What does the fortune cookie say?\r");
    const next = await pty.expect(/\[(\d+) tokens · TTFT[^\]]*\]/);
    assert.doesNotMatch(next, /stopped/, "the next question gets a whole answer");

    await pty.expect(/> $/);
    pty.type("\x03");
    await pty.expect(/press Ctrl-C again to quit/);
    pty.type("\x03");
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      pty.exited,
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve("still running"), 10_000);
      }),
    ]);
    clearTimeout(timer);
    if (process.env.AWQ_TEST_SHOW_PTY) process.stderr.write(pty.text);
    assert.equal(
      code,
      0,
      `awq chat exits with status 0 after the second Ctrl-C; terminal:\n${pty.text.slice(-800)}`,
    );
  } finally {
    pty.kill();
  }
});

test("awq chat with piped input: answers line by line, no progress bar, /quit ends it", {
  timeout: 60_000,
}, async () => {
  const child = spawn(
    process.execPath,
    [
      cli,
      "chat",
      "--model",
      model,
      "--backend",
      "cpu",
      "--max-model-len",
      "512",
      "--temperature",
      "0",
      "--max-tokens",
      "12",
    ],
    { cwd: repoRoot },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  child.stdin.end("Tell me a fortune.\n/system Be brief.\n/params top_k=5\nAnd another.\n/quit\n");
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  assert.equal(code, 0, `exit status; stderr: ${stderr}`);
  assert.equal(stderr, "", "no progress bar or escape codes when stderr is not a terminal");
  assert.doesNotMatch(stdout, /\x1b\[/, "no colours when stdout is not a terminal");
  assert.equal(stdout.match(/\[\d+ tokens · TTFT \d+ ms/g)?.length, 2, `two answers in:\n${stdout}`);
  assert.match(stdout, /System prompt set\./);
  assert.match(stdout, /top_k=5/);
});
