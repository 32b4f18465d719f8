// Runs the compiled test files with node:test. Node 20's `node --test` takes no glob patterns, so the files
// are listed here: dist/src/**/*.test.js and dist/test/*.test.js (not dist/test/gpu/: `npm run test:gpu`),
// or dist/test/gpu/*.test.js with --gpu. Extra arguments go to node --test.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const gpu = args.includes("--gpu");
const passThrough = args.filter((a) => a !== "--gpu");

function testFiles(dir, recursive) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && recursive) found.push(...testFiles(path, true));
    else if (entry.isFile() && entry.name.endsWith(".test.js")) found.push(path);
  }
  return found.sort();
}

const files = gpu
  ? testFiles(join(root, "dist", "test", "gpu"), false)
  : [...testFiles(join(root, "dist", "src"), true), ...testFiles(join(root, "dist", "test"), false)];
if (files.length === 0) {
  console.error("run-tests: no compiled tests found under dist/ (run `npm run build` first)");
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=1", ...passThrough, ...files.map((f) => relative(root, f))],
  { cwd: root, stdio: "inherit" },
);
process.exit(r.status ?? 1);
