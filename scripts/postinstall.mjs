// `npm install` sets everything up: compiles the TypeScript, then the CUDA addon when nvcc is found.
// Installed as a dependency of another project (no tsconfig / no typescript here), it only tries the addon.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
if (existsSync(join(root, "tsconfig.json")) && existsSync(tsc)) {
  const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const buildNative = join(root, "scripts", "build-native.mjs");
if (existsSync(buildNative)) {
  const r = spawnSync(process.execPath, [buildNative, "--if-nvcc"], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
