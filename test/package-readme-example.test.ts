/**
 * The README's library example, run exactly as written in a fresh project that has awq-ts as a dependency: by
 * default this checkout linked as node_modules/awq-ts (what `import "awq-ts"` resolves through the package's
 * "exports"); with AWQ_PACKAGE_TARBALL=/path/awq-ts-*.tgz, that tarball installed by npm (the release check).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** The first ```js block of the README's "## Library" section. */
function readmeLibraryExample(readme: string): string {
  const section = readme.slice(readme.indexOf("\n## Library\n"));
  const match = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(match, 'README.md has a ```js block under "## Library"');
  return match[1]!;
}

test("the README's library example runs unchanged from an installed package (Node 20, plain .mjs)", {
  timeout: 180_000,
}, () => {
  const example = readmeLibraryExample(readFileSync(path.join(repoRoot, "README.md"), "utf8"));
  assert.doesNotMatch(
    example,
    /node_modules|await using/,
    "no node_modules paths, no await using in the JS form",
  );
  const project = mkdtempSync(path.join(tmpdir(), "awq-readme-"));
  try {
    writeFileSync(path.join(project, "package.json"), '{ "name": "readme-example", "version": "1.0.0" }\n');
    const tarball = process.env.AWQ_PACKAGE_TARBALL;
    if (tarball) {
      const install = spawnSync("npm", ["install", "--no-audit", "--no-fund", tarball], {
        cwd: project,
        encoding: "utf8",
      });
      assert.equal(install.status, 0, `npm install ${tarball}:\n${install.stdout}\n${install.stderr}`);
    } else {
      mkdirSync(path.join(project, "node_modules"));
      symlinkSync(repoRoot, path.join(project, "node_modules", "awq-ts"), "dir");
    }
    writeFileSync(path.join(project, "example.mjs"), example);
    const run = spawnSync(process.execPath, ["example.mjs"], {
      cwd: project,
      encoding: "utf8",
      timeout: 150_000,
    });
    assert.equal(run.status, 0, `node example.mjs failed:\n${run.stdout}\n${run.stderr}`);
    // generate: its text, finish reason and usage; then the chat reply and the stream.
    assert.match(run.stdout, /(stop|length) \{[\s\S]*promptTokens/, run.stdout);
    assert.ok(run.stdout.trim().split("\n").length >= 3, `three outputs:\n${run.stdout}`);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
});
