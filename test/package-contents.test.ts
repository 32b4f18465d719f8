/**
 * What `npm pack` puts in the tarball (the file list of `npm pack --dry-run`): what a user runs and a LICENSE;
 * no build folders, compiled tests, source maps, GPU-machine scripts or kernel-test results; every relative
 * import of a shipped module is shipped too.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

function packedFiles(): { files: string[]; size: number } {
  const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: repoRoot,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const [pack] = JSON.parse(r.stdout) as [{ files: { path: string }[]; size: number }];
  return { files: pack.files.map((f) => f.path), size: pack.size };
}

test("the tarball carries the library, CLI, demo model, addon sources, install scripts and LICENSE only", () => {
  const { files } = packedFiles();
  const has = new Set(files);
  for (const needed of [
    "LICENSE",
    "README.md",
    "package.json",
    "dist/src/index.js",
    "dist/src/index.d.ts",
    "dist/src/cli/main.js",
    "dist/src/demo-model.js",
    "models/tiny-chat-awq/config.json",
    "data/calib/kjv-sample.txt",
    "data/calib/README.md",
    "scripts/postinstall.mjs",
    "scripts/build-native.mjs",
    "scripts/native-cache.mjs",
    "native/CMakeLists.txt",
    "native/addon/addon.cpp",
  ]) {
    assert.ok(has.has(needed), `the tarball has ${needed}`);
  }
  const unwanted = files.filter(
    (f) =>
      f.startsWith("native/build") ||
      f.startsWith("native/kernel-tests") ||
      f.startsWith("dist/test") ||
      f.startsWith("dist/bench") ||
      f.startsWith("src/") ||
      f.startsWith("test/") ||
      /\.test(-helper)?\.(js|d\.ts)$/.test(f) ||
      f.endsWith(".map") ||
      /CMakeCache|\.o$|\.ninja/.test(f) ||
      /^scripts\/(gpu-|run-tests|prepack)/.test(f) ||
      /RESULTS/.test(f),
  );
  assert.deepEqual(unwanted, [], "no build leftovers, tests, maps, GPU scripts or kernel-test results");
  assert.equal(JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")).license, "Apache-2.0");
  assert.match(readFileSync(path.join(repoRoot, "LICENSE"), "utf8"), /Apache License\s+Version 2\.0/);
});

test("every relative import of a shipped module is itself shipped", () => {
  const has = new Set(packedFiles().files);
  const missing: string[] = [];
  for (const file of has) {
    if (!file.endsWith(".js") && !file.endsWith(".mjs")) continue;
    const text = readFileSync(path.join(repoRoot, file), "utf8");
    for (const m of text.matchAll(/(?:from|import\()\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1]!));
      if (!has.has(target)) missing.push(`${file} -> ${m[1]}`);
    }
  }
  assert.deepEqual(missing, []);
});

test("the README states the tarball's size (measured with the prebuilt addon in it)", (t) => {
  const { files, size } = packedFiles();
  if (!files.includes(`prebuilds/${process.platform}-${process.arch}/awq_native.node`)) {
    t.skip("no prebuilt addon in prebuilds/ (npm run build:prebuilt): the size would not be the release's");
    return;
  }
  const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
  const m = /tarball is about (\d+) MB/.exec(readme);
  assert.ok(m, 'README.md says "the tarball is about N MB"');
  const mb = size / 1e6;
  assert.ok(
    Math.abs(mb - Number(m[1])) <= Number(m[1]) * 0.2,
    `README says ${m[1]} MB; measured ${mb.toFixed(1)} MB`,
  );
});
