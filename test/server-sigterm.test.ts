/**
 * `awq serve` as a process: SIGTERM stops accepting, lets the running request end (aborted after the grace
 * period, its stream closed properly with [DONE]), and exits 0.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { modelDir, repoRoot } from "./server-harness.js";

test("SIGTERM on awq serve: the running stream ends, nothing hangs, exit code 0", {
  timeout: 60_000,
}, async () => {
  const child = spawn(
    process.execPath,
    [
      `${repoRoot}dist/src/cli/main.js`,
      "serve",
      modelDir,
      "--port",
      "0",
      "--backend",
      "cpu",
      "--max-model-len",
      "2048",
      "--shutdown-grace-period",
      "0.5",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`awq serve did not start: ${stdout}${stderr}`)),
        45_000,
      );
      const check = () => {
        for (const line of stdout.split("\n")) {
          if (!line.includes('"listening"')) continue;
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
          return;
        }
      };
      child.stdout.on("data", check);
      child.on("exit", () => reject(new Error(`awq serve exited early: ${stdout}${stderr}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${url}/health`)).status, 200);

    // A long streamed request: it must end (abort after the grace period), not hang.
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "In the beginning", max_tokens: 1500, ignore_eos: true, stream: true }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let body = new TextDecoder().decode((await reader.read()).value);
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      body += new TextDecoder().decode(value);
    }
    assert.match(body, /"finish_reason":"abort"/, "the running request is aborted after the grace period");
    assert.ok(body.trimEnd().endsWith("data: [DONE]"), "its stream is closed properly");

    const [code, signal] = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, stderr);
    await assert.rejects(fetch(`${url}/health`), "the port no longer accepts connections");
    assert.match(stdout, /"msg":"stopped"/);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});
