/**
 * The install step of an installed package (scripts/postinstall.mjs in a folder without tsconfig.json / src):
 * one true line for each case, and never a compile: the prebuilt addon when it loads here (copied to
 * native/build/, where the CUDA backend looks), the reason when it does not, AWQ_SKIP_NATIVE=1.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const platform = `${process.platform}-${process.arch}`;

/** A folder shaped like the installed package (only what postinstall reads), with an optional prebuilt. */
function fakeInstall(prebuilt: string | Buffer | null): string {
  const dir = mkdtempSync(path.join(tmpdir(), "awq-postinstall-"));
  mkdirSync(path.join(dir, "scripts"));
  copyFileSync(
    path.join(repoRoot, "scripts", "postinstall.mjs"),
    path.join(dir, "scripts", "postinstall.mjs"),
  );
  writeFileSync(path.join(dir, "package.json"), '{ "name": "awq-ts", "type": "module" }\n');
  if (prebuilt !== null) {
    const into = path.join(dir, "prebuilds", platform);
    mkdirSync(into, { recursive: true });
    if (typeof prebuilt === "string") copyFileSync(prebuilt, path.join(into, "awq_native.node"));
    else writeFileSync(path.join(into, "awq_native.node"), prebuilt);
    writeFileSync(
      path.join(into, "build-info.json"),
      JSON.stringify({
        napiVersion: 8,
        gencode: ["-gencode=arch=compute_90a,code=sm_90a", "-gencode=arch=compute_80,code=compute_80"],
      }),
    );
  }
  return dir;
}

function postinstall(dir: string, env: Record<string, string> = {}): { status: number | null; out: string } {
  const { AWQ_SKIP_NATIVE: _s, AWQ_BUILD_NATIVE: _b, ...rest } = process.env;
  const r = spawnSync(process.execPath, [path.join(dir, "scripts", "postinstall.mjs")], {
    encoding: "utf8",
    env: { ...rest, ...env },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test("no prebuilt for this platform: one line, CPU backend only, no compile", () => {
  const dir = fakeInstall(null);
  try {
    const { status, out } = postinstall(dir);
    assert.equal(status, 0);
    assert.equal(
      out,
      `awq: no prebuilt CUDA addon for ${platform}: CPU backend only (AWQ_BUILD_NATIVE=1 builds it with nvcc)\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("AWQ_SKIP_NATIVE=1 says so (not 'nvcc not found')", () => {
  const dir = fakeInstall(Buffer.from("not an addon"));
  try {
    const { status, out } = postinstall(dir, { AWQ_SKIP_NATIVE: "1" });
    assert.equal(status, 0);
    assert.equal(out, "awq: AWQ_SKIP_NATIVE=1: no CUDA addon; CPU backend only\n");
    assert.ok(!existsSync(path.join(dir, "native", "build", "awq_native.node")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a prebuilt that does not load here: the reason, the install still succeeds, nothing copied", () => {
  const dir = fakeInstall(Buffer.from("not an ELF file"));
  try {
    const { status, out } = postinstall(dir);
    assert.equal(status, 0);
    assert.match(out, /^awq: the prebuilt CUDA addon does not load here \(.+\): CPU backend only/);
    assert.equal(out.trim().split("\n").length, 1, out);
    assert.ok(!existsSync(path.join(dir, "native", "build", "awq_native.node")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const builtAddon = [
  path.join(repoRoot, "prebuilds", platform, "awq_native.node"),
  path.join(repoRoot, "native", "build", "awq_native.node"),
].find((p) => existsSync(p));

test("the prebuilt addon loads (no GPU needed): it is used, with its targets named", {
  skip: builtAddon ? false : "no built addon here (npm run build:prebuilt)",
}, () => {
  const dir = fakeInstall(builtAddon!);
  try {
    const t0 = Date.now();
    const { status, out } = postinstall(dir);
    assert.equal(status, 0, out);
    assert.equal(out, `awq: using the prebuilt CUDA addon (${platform}; sm_90a, PTX 80)\n`);
    assert.ok(existsSync(path.join(dir, "native", "build", "awq_native.node")));
    assert.ok(Date.now() - t0 < 10_000, "no compile");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
