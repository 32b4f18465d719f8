// `npm pack` / `npm publish`: what the package ships is built fresh from this checkout.
// 1. tsc, then dist/src files whose source is gone (a moved or deleted .ts) are removed, so none ship;
// 2. the prebuilt CUDA addon (scripts/build-native.mjs --prebuild: every target, rebuilt only when native/
//    changed). Without nvcc this fails; AWQ_SKIP_NATIVE=1 builds none (prebuilds/ ships as it is: with no
//    prebuilds/ folder, installs use the CPU backend).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function run(args) {
  const r = spawnSync(process.execPath, args, { stdio: "inherit", cwd: root });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

run([join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.json")]);

function removeOrphans(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      removeOrphans(path);
      if (readdirSync(path).length === 0) rmSync(path, { recursive: true });
      continue;
    }
    const m = /^(.*)\.(js|d\.ts|js\.map)$/.exec(entry.name);
    if (m === null) continue;
    const source = join(root, relative(join(root, "dist"), dir), `${m[1]}.ts`);
    if (!existsSync(source)) rmSync(path);
  }
}
removeOrphans(join(root, "dist", "src"));

if (process.env.AWQ_SKIP_NATIVE === "1") {
  // Not rebuilt; whatever prebuilds/ already holds ships as it is (delete the folder to ship none).
  const held = existsSync(join(root, "prebuilds")) ? readdirSync(join(root, "prebuilds")) : [];
  process.stdout.write(
    held.length > 0
      ? `awq: prepack: AWQ_SKIP_NATIVE=1: the prebuilt addon is not rebuilt; prebuilds/ ships as it is (${held.join(", ")})\n`
      : "awq: prepack: AWQ_SKIP_NATIVE=1: the package ships no prebuilt CUDA addon\n",
  );
} else {
  run([join(root, "scripts", "build-native.mjs"), "--prebuild"]);
}
