// `npm install` sets the package up and prints one true line about the CUDA addon:
// - in a source checkout (tsconfig.json and src/ are here): compiles the TypeScript, then builds the addon from
//   native/ when nvcc is found (scripts/build-native.mjs --if-nvcc);
// - installed from the package: uses the prebuilt addon of prebuilds/<platform>-<arch>/ when it loads here
//   (copied to native/build/awq_native.node, where the CUDA backend looks), and compiles nothing;
// - AWQ_SKIP_NATIVE=1: no addon at all (CPU backend only); AWQ_BUILD_NATIVE=1: build it from native/ (nvcc).
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const say = (line) => process.stdout.write(`awq: ${line}\n`);

const checkout = existsSync(join(root, "tsconfig.json")) && existsSync(join(root, "src"));
if (checkout) {
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  if (existsSync(tsc)) {
    const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { stdio: "inherit" });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}

function buildFromSource(ifNvcc) {
  const r = spawnSync(
    process.execPath,
    [join(root, "scripts", "build-native.mjs"), ...(ifNvcc ? ["--if-nvcc"] : [])],
    { stdio: "inherit" },
  );
  process.exit(r.status ?? 1);
}

if (process.env.AWQ_SKIP_NATIVE === "1") {
  say("AWQ_SKIP_NATIVE=1: no CUDA addon; CPU backend only");
  process.exit(0);
}
if (process.env.AWQ_BUILD_NATIVE === "1") buildFromSource(false);
if (checkout) buildFromSource(true);

// Installed package: the prebuilt addon, when there is one for this platform and it loads in this Node.
const platform = `${process.platform}-${process.arch}`;
const prebuilt = join(root, "prebuilds", platform, "awq_native.node");
const target = join(root, "native", "build", "awq_native.node");
if (!existsSync(prebuilt)) {
  say(`no prebuilt CUDA addon for ${platform}: CPU backend only (AWQ_BUILD_NATIVE=1 builds it with nvcc)`);
  process.exit(0);
}
const napi = Number(process.versions.napi ?? 0);
let info = {};
try {
  info = JSON.parse(readFileSync(join(dirname(prebuilt), "build-info.json"), "utf8"));
} catch {
  // no build-info.json: the load check below decides
}
const needNapi = Number(info.napiVersion ?? 8);
// Loading needs no GPU or driver (the CUDA runtime is linked statically and finds the driver at run time); a
// separate process keeps a crash of a foreign binary out of npm.
const load = spawnSync(
  process.execPath,
  [
    "-e",
    "const a = require(process.argv[1]); if (typeof a.probe !== 'function' || typeof a.Engine !== 'function') { console.error('not the awq_native addon'); process.exit(3); }",
    prebuilt,
  ],
  { encoding: "utf8" },
);
const loadError = (load.stderr ?? "").trim().split("\n").filter(Boolean).at(-1) ?? `exit ${load.status}`;
if (napi < needNapi || load.status !== 0) {
  const why = napi < needNapi ? `Node's N-API ${napi} is older than ${needNapi}` : loadError;
  rmSync(target, { force: true });
  say(`the prebuilt CUDA addon does not load here (${why}): CPU backend only (AWQ_BUILD_NATIVE=1 builds it)`);
  process.exit(0);
}
mkdirSync(dirname(target), { recursive: true });
copyFileSync(prebuilt, target);
const targets = Array.isArray(info.gencode)
  ? [...new Set(info.gencode.map((g) => /,code=([a-z_0-9]+)/.exec(g)?.[1]).filter(Boolean))]
      .map((c) => (c.startsWith("compute_") ? `PTX ${c.slice(8)}` : c))
      .join(", ")
  : "";
say(`using the prebuilt CUDA addon (${platform}${targets ? `; ${targets}` : ""})`);
