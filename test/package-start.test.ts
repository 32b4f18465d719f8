/**
 * How the README tells people to run the CLI from a checkout (issue 18, point 4): never `npx awq` (npm copies
 * the checkout into its cache, and SIGTERM to npx does not reach the server); `npm start` execs the server, so
 * stopping npm stops the server.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

test("the README never runs the CLI through npx, and says how to get `awq` in a checkout", () => {
  const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
  const npxRuns = readme
    .split("\n")
    .filter((line) => /npx awq\b/.test(line) && !/do not use `npx awq`/.test(line));
  assert.deepEqual(npxRuns, []);
  assert.match(readme, /npm link/);
  assert.match(readme, /npm install -g awq-ts/);
  assert.match(readme, /node_modules\/\.bin\/awq/);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("npm start execs the server: SIGTERM to npm stops the server process", { timeout: 90_000 }, async () => {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
    scripts: { start: string };
  };
  assert.match(pkg.scripts.start, /^exec node /);
  const npm = spawn("npm", ["start", "--", "--port", "0", "--log-format", "json", "--backend", "cpu"], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  npm.stderr.on("data", (d) => (stderr += d));
  try {
    // The listening line's pid is the server's own process.
    const serverPid = await new Promise<number>((resolve, reject) => {
      let buffered = "";
      npm.stdout.on("data", (d) => {
        buffered += d;
        for (const line of buffered.split("\n")) {
          if (!line.startsWith("{")) continue;
          const event = JSON.parse(line) as { msg?: string; pid?: number };
          if (event.msg === "listening" && event.pid !== undefined) resolve(event.pid);
        }
      });
      npm.on("exit", (code) => reject(new Error(`npm start exited (${code}) before listening:\n${stderr}`)));
    });
    assert.notEqual(serverPid, npm.pid);
    npm.kill("SIGTERM");
    const deadline = Date.now() + 20_000;
    while (alive(serverPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(serverPid), false, "the server stopped with npm");
  } finally {
    npm.kill("SIGKILL");
  }
});
