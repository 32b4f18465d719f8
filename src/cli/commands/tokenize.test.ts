import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const mainJs = path.join(repoRoot, "dist/src/cli/main.js");

async function awqTokenize(...args: string[]): Promise<string> {
  const { stdout } = await run(
    process.execPath,
    [mainJs, "tokenize", "--model", "models/tiny-chat-awq", ...args],
    {
      cwd: repoRoot,
    },
  );
  return stdout;
}

describe("awq tokenize", () => {
  test("prints the ids OpenChat's authors published for a system prompt", async () => {
    const out = await awqTokenize("You are OpenOrcaChat.<|end_of_turn|>User: Hello<|end_of_turn|>Assistant:");
    assert.equal(
      out,
      "[1, 887, 526, 4673, 2816, 1113, 1451, 271, 29889, 32000, 4911, 29901, 15043, 32000, 4007, 22137, 29901]\n",
    );
  });

  test("prints the published ids of the multi-turn string", async () => {
    const out = await awqTokenize(
      "You are OpenOrcaChat.<|end_of_turn|>User: Hello<|end_of_turn|>Assistant: Hi<|end_of_turn|>User: How are you today?<|end_of_turn|>Assistant:",
    );
    assert.deepEqual(
      JSON.parse(out),
      [
        1, 887, 526, 4673, 2816, 1113, 1451, 271, 29889, 32000, 4911, 29901, 15043, 32000, 4007, 22137, 29901,
        6324, 32000, 4911, 29901, 1128, 526, 366, 9826, 29973, 32000, 4007, 22137, 29901,
      ],
    );
  });

  test("--chat formats one user message in the model's prompt format", async () => {
    assert.deepEqual(
      JSON.parse(await awqTokenize("--chat", "Hello")),
      [1, 4911, 29901, 15043, 32000, 4007, 22137, 29901],
    );
    const withSystem = JSON.parse(await awqTokenize("--chat", "--system", "You are OpenOrcaChat.", "Hello"));
    assert.deepEqual(withSystem.slice(0, 10), [1, 887, 526, 4673, 2816, 1113, 1451, 271, 29889, 32000]);
    const gpt4 = JSON.parse(await awqTokenize("--chat", "--template", "openchat-gpt4", "Hello"));
    assert.deepEqual(gpt4.slice(0, 6), [1, 402, 7982, 29946, 4911, 29901]);
  });

  test("fails with exit code 1 and the reason for a folder without tokenizer.json", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "awq-tokenize-cli-"));
    try {
      await assert.rejects(
        run(process.execPath, [mainJs, "tokenize", "--model", dir, "Hi"]),
        (err: Error & { code?: number; stderr?: string }) => {
          assert.equal(err.code, 1);
          assert.match(err.stderr ?? "", /no tokenizer\.json in .*awq-tokenize-cli-/);
          return true;
        },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
