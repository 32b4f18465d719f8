/** `awq` as a user meets it when something is wrong: one line naming the problem, exit code 1, fast. */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const mainJs = path.join(repoRoot, "dist/src/cli/main.js");
const demoDir = path.join(repoRoot, "models/tiny-chat-awq");
/** A model that does not exist: flags must be refused before any loading is tried. */
const missingModel = path.join(repoRoot, "no-such-model-folder");

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function awq(...args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, [mainJs, ...args], {
      cwd: repoRoot,
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Exit code 1 and exactly one stderr line, which matches `pattern`. */
function assertOneLineError(result: Result, pattern: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
  assert.match(lines[0] ?? "", pattern);
}

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "awq-cli-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("awq usage errors", () => {
  test("--version is package.json's version", async () => {
    const pkg = JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")) as {
      version: string;
    };
    const { code, stdout } = await awq("--version");
    assert.equal(code, 0);
    assert.equal(stdout.trim(), pkg.version);
  });

  test("a missing or malformed flag is one 'awq:' line, not the whole help text", async () => {
    assertOneLineError(
      await awq("generate", "--model", missingModel),
      /^awq: required option '--prompt <text>' not specified$/,
    );
    assertOneLineError(
      await awq("generate", "--model", missingModel, "--prompt", "x", "--temperature", "abc"),
      /^awq: .*--temperature needs a number$/,
    );
    assertOneLineError(
      await awq("bench", "latency", "--backend", "cpu"),
      /^awq: unknown option '--backend'$/,
    );
    assertOneLineError(
      await awq("serve", missingModel, "--tokenizer-pool-size", "-1"),
      /--tokenizer-pool-size needs an integer >= 0, got "-1"$/,
    );
  });

  test("generate and chat refuse bad sampling flags by their flag names before loading a model", async () => {
    assertOneLineError(
      await awq("generate", "--model", missingModel, "--prompt", "x", "--top-p", "2"),
      /^awq: --top-p must be greater than 0 and at most 1, got 2$/,
    );
    assertOneLineError(
      await awq("generate", "--model", missingModel, "--prompt", "x", "--max-model-len", "0"),
      /--max-model-len needs a positive integer$/,
    );
    assertOneLineError(
      await awq("chat", "--model", missingModel, "--temperature", "-1"),
      /^awq: --temperature must be at least 0, got -1$/,
    );
  });

  test("ppl: a text shorter than one window, or --ctx beyond the model's context, names the flag", async () => {
    const short = path.join(tmp, "short.txt");
    await writeFile(short, "hello world\n");
    assertOneLineError(
      await awq("ppl", "--model", demoDir, "--text-file", short, "--backend", "cpu"),
      /^awq: --text-file .*short\.txt has 4 tokens, fewer than one window of --ctx 512: pass a longer text or a smaller --ctx$/,
    );
    const long = path.join(tmp, "long.txt");
    await writeFile(long, "hello world ".repeat(2500));
    assertOneLineError(
      await awq(
        "ppl",
        "--model",
        demoDir,
        "--text-file",
        long,
        "--ctx",
        "4096",
        "--max-windows",
        "1",
        "--backend",
        "cpu",
      ),
      /^awq: --ctx 4096 is longer than the model's context \(max_position_embeddings 2048 in config\.json\)$/,
    );
  });

  test("quantize refuses an --out folder that is not empty (or is a file)", async () => {
    const used = path.join(tmp, "used");
    await mkdir(used);
    await writeFile(path.join(tmp, "a-file"), "x");
    await writeFile(path.join(used, "notes.txt"), "mine");
    assertOneLineError(
      await awq("quantize", "--model", demoDir, "--out", used, "--backend", "cpu"),
      /^awq: --out .*used already exists and is not empty \(notes\.txt\); pass a new folder, or empty this one first$/,
    );
    assert.equal(await readFile(path.join(used, "notes.txt"), "utf8"), "mine");
    assertOneLineError(
      await awq("quantize", "--model", demoDir, "--out", path.join(tmp, "a-file"), "--backend", "cpu"),
      /^awq: --out .*a-file is a file; pass a new \(or empty\) folder$/,
    );
  });

  test("tokenize names an unknown chat template and the choices", async () => {
    assertOneLineError(
      await awq("tokenize", "--model", demoDir, "--chat", "--template", "nosuch", "hi"),
      /^awq: unknown chat template "nosuch": expected one of openchat, openchat-gpt4, /,
    );
  });
});

/** `awq ARGS` with `input` on stdin. */
function awqWithStdin(input: string, ...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [mainJs, ...args], { cwd: repoRoot });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe("one way to say things across the commands (issue 18, point 10)", () => {
  const commands: string[][] = [
    ["generate", "--prompt", "x"],
    ["chat"],
    ["tokenize", "hello"],
    ["ppl", "--text-file", "nope.txt"],
    ["quantize", "--out", "nope-out"],
    ["bench", "cpu"],
  ];

  test("every command takes the model as its positional argument or --model, and refuses two", async () => {
    for (const [command, ...rest] of commands) {
      const args = command === "bench" ? ["bench", ...rest] : [command!, ...rest];
      const two = await awq(
        ...args.slice(0, command === "bench" ? 2 : 1),
        "a-model",
        "--model",
        "b-model",
        ...args.slice(command === "bench" ? 2 : 1),
      );
      assertOneLineError(two, /^awq: two models given: "a-model" and --model "b-model"; give one$/);
    }
    for (const [command, ...rest] of commands.filter(([c]) => c !== "bench")) {
      assertOneLineError(
        await awq(command!, ...rest),
        new RegExp(`^awq: name the model: awq ${command} MODEL or --model MODEL`),
      );
    }
    const inspect = await awq("inspect");
    assert.equal(inspect.code, 1);
    assert.match(inspect.stderr, /name the model: awq inspect MODEL or --model MODEL/);
    // Positional and --model name the same model.
    const byFlag = await awq("tokenize", "--model", demoDir, "hello");
    const byPosition = await awq("tokenize", demoDir, "hello");
    assert.equal(byFlag.code, 0, byFlag.stderr);
    assert.equal(byPosition.stdout, byFlag.stdout);
    assert.equal((await awq("inspect", "demo", "--json")).code, 0);
  });

  test("--prompt - (and tokenize's TEXT -) read standard input", async () => {
    const tokenized = await awqWithStdin("In the beginning God created\n", "tokenize", "demo", "-");
    assert.equal(tokenized.code, 0, tokenized.stderr);
    assert.equal(tokenized.stdout, "[1, 512, 278, 6763, 4177, 2825]\n");
    const generated = await awqWithStdin(
      "In the beginning God created\n",
      "generate",
      "demo",
      "--prompt",
      "-",
      "--max-tokens",
      "2",
      "--temperature",
      "0",
      "--backend",
      "cpu",
      "--json",
    );
    assert.equal(generated.code, 0, generated.stderr);
    assert.equal(
      (JSON.parse(generated.stdout) as { usage: { prompt_tokens: number } }).usage.prompt_tokens,
      6,
    );
  });

  test("a bad --port is refused before the model loads", async () => {
    const started = Date.now();
    for (const port of ["70000", "-1", "http", "80.5"]) {
      assertOneLineError(
        await awq("serve", missingModel, "--port", port),
        new RegExp(`--port needs a port number from 0 to 65535, got "${port.replace(".", "\\.")}"$`),
      );
    }
    assert.ok(Date.now() - started < 20_000);
  });

  test("bench latency and bench cpu with --json: errors are JSON on stdout too", async () => {
    const usage = await awq("bench", "latency", "--json", "--layers", "0");
    assert.equal(usage.code, 1);
    assert.deepEqual(JSON.parse(usage.stdout), {
      error: {
        message: "option '--layers <n>' argument '0' is invalid. --layers needs a positive integer",
        type: "usage",
      },
    });
    const failed = await awq("bench", "cpu", missingModel, "--json");
    assert.equal(failed.code, 1);
    const body = JSON.parse(failed.stdout) as { error: { message: string; type: string } };
    assert.match(body.error.message, /no-such-model-folder/);
    // Without --json the same error is the usual one line on stderr.
    assertOneLineError(
      await awq("bench", "latency", "--layers", "0"),
      /^awq: option '--layers <n>' argument '0' is invalid/,
    );
  });

  test("awq bench cpu times prefill and decode of the CPU backend", async () => {
    const { code, stdout, stderr } = await awq(
      "bench",
      "cpu",
      "--prefill",
      "16",
      "--batches",
      "1,2",
      "--tokens",
      "3",
      "--repeats",
      "1",
      "--json",
    );
    assert.equal(code, 0, stderr);
    const r = JSON.parse(stdout) as {
      model: string;
      prefill: { tokens: number; tokensPerSecond: number }[];
      decode: { batch: number; tokens: number; tokensPerSecond: number }[];
    };
    assert.match(r.model, /tiny-chat-awq$/);
    assert.deepEqual(
      r.prefill.map((p) => p.tokens),
      [16],
    );
    assert.deepEqual(
      r.decode.map((d) => [d.batch, d.tokens]),
      [
        [1, 2],
        [2, 4],
      ],
    );
    for (const row of [...r.prefill, ...r.decode]) assert.ok(row.tokensPerSecond > 0);
  });
});
