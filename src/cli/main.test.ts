/** `awq` as a user meets it when something is wrong: one line naming the problem, exit code 1, fast. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
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
