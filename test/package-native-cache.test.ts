/**
 * A CMake build folder made for another folder (a copied or moved checkout, a packed build folder) is cleared
 * and configured afresh instead of failing the install (scripts/native-cache.mjs, used by build-native.mjs).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

interface NativeCache {
  staleCacheReason(buildDir: string, sourceDir: string, generator: string | null): string | null;
  clearStaleCache(buildDir: string, sourceDir: string, generator: string | null): string | null;
}
const cache = (await import(
  pathToFileURL(path.join(repoRoot, "scripts", "native-cache.mjs")).href
)) as NativeCache;

function cmakeCache(buildDir: string, sourceDir: string, generator = "Ninja"): string {
  return [
    "# This is the CMakeCache file.",
    `CMAKE_CACHEFILE_DIR:INTERNAL=${buildDir}`,
    `CMAKE_HOME_DIRECTORY:INTERNAL=${sourceDir}`,
    `CMAKE_GENERATOR:INTERNAL=${generator}`,
    "",
  ].join("\n");
}

test("a cache made in another folder, for other sources or another generator is stale and cleared", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "awq-cmake-cache-"));
  try {
    const source = path.join(dir, "native");
    const build = path.join(source, "build");
    mkdirSync(path.join(build, "CMakeFiles"), { recursive: true });
    writeFileSync(path.join(build, "keep-me.txt"), "kernel-test output\n");

    writeFileSync(path.join(build, "CMakeCache.txt"), cmakeCache(build, source));
    assert.equal(cache.staleCacheReason(build, source, "Ninja"), null, "its own cache is kept");
    assert.equal(cache.clearStaleCache(build, source, "Ninja"), null);
    assert.ok(existsSync(path.join(build, "CMakeCache.txt")));

    assert.equal(
      cache.staleCacheReason(build, source, "Unix Makefiles"),
      "it was made with the Ninja generator",
    );

    writeFileSync(path.join(build, "CMakeCache.txt"), cmakeCache("/home/packer/awq-ts/native/build", source));
    writeFileSync(path.join(build, "build.ninja"), "");
    assert.equal(
      cache.clearStaleCache(build, source, "Ninja"),
      "it was made in /home/packer/awq-ts/native/build",
    );
    assert.ok(!existsSync(path.join(build, "CMakeCache.txt")));
    assert.ok(!existsSync(path.join(build, "CMakeFiles")));
    assert.ok(!existsSync(path.join(build, "build.ninja")));
    assert.ok(existsSync(path.join(build, "keep-me.txt")), "files CMake did not write stay");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const hasToolchain = ["cmake", "nvcc"].every(
  (exe) => spawnSync("sh", ["-c", `command -v ${exe} || test -x /usr/local/cuda/bin/${exe}`]).status === 0,
);

test("build-native.mjs configures a copied checkout whose build folder came from elsewhere", {
  skip: hasToolchain ? false : "needs cmake and nvcc",
  timeout: 240_000,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), "awq-copied-checkout-"));
  try {
    const copy = path.join(dir, "awq-ts");
    mkdirSync(copy);
    cpSync(path.join(repoRoot, "scripts"), path.join(copy, "scripts"), { recursive: true });
    cpSync(path.join(repoRoot, "native"), path.join(copy, "native"), {
      recursive: true,
      filter: (p) => !p.includes(`${path.sep}build`) && !p.includes("kernel-tests"),
    });
    symlinkSync(path.join(repoRoot, "node_modules"), path.join(copy, "node_modules"), "dir");
    // The build folder of the original checkout, as `cp -r` or a packed tarball carries it.
    const build = path.join(copy, "native", "build");
    mkdirSync(path.join(build, "CMakeFiles"), { recursive: true });
    writeFileSync(
      path.join(build, "CMakeCache.txt"),
      cmakeCache(path.join(repoRoot, "native", "build"), path.join(repoRoot, "native")),
    );
    const r = spawnSync(
      process.execPath,
      [path.join(copy, "scripts", "build-native.mjs"), "--configure-only"],
      {
        encoding: "utf8",
        env: { ...process.env, AWQ_CUDA_GENCODE: "-gencode=arch=compute_90a,code=sm_90a" },
      },
    );
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.match(out, /awq: cleared the CMake cache in .*native\/build \(it was made in .*\/native\/build\)/);
    assert.match(out, /awq: configured /);
    assert.equal(
      cache.staleCacheReason(build, path.join(copy, "native"), null),
      null,
      "the new cache is its own",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
