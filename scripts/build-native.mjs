// Builds the CUDA addon (native/ -> native/build/awq_native.node) with plain CMake and the N-API headers of
// the installed node-api-headers / node-addon-api packages: no network, no node-gyp.
//   node scripts/build-native.mjs             build; fail when nvcc or CMake is missing
//   node scripts/build-native.mjs --if-nvcc   (npm install) skip with one line when nvcc is not found;
//                                             when nvcc IS found, a failed build fails the install
// Env: AWQ_CUDA_GENCODE="-gencode=arch=compute_90a,code=sm_90a" limits the targets (quicker local builds);
//      CUDACXX / CUDA_HOME / CUDA_PATH pick the toolkit; AWQ_BUILD_JOBS sets the parallel jobs.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ifNvcc = process.argv.includes("--if-nvcc");
const nativeDir = join(root, "native");
const buildDir = join(nativeDir, "build");

function findOnPath(exe) {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, exe))) return join(dir, exe);
  }
  return null;
}

function findNvcc() {
  if (process.env.CUDACXX && existsSync(process.env.CUDACXX)) return process.env.CUDACXX;
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH, "/usr/local/cuda"]) {
    if (home && existsSync(join(home, "bin", "nvcc"))) return join(home, "bin", "nvcc");
  }
  return findOnPath("nvcc");
}

function fail(message) {
  process.stderr.write(`awq: native build failed: ${message}\n`);
  process.exit(1);
}

if (!existsSync(join(nativeDir, "CMakeLists.txt"))) {
  if (ifNvcc) process.exit(0);
  fail(`${join(nativeDir, "CMakeLists.txt")} is missing`);
}
const nvcc = findNvcc();
if (nvcc === null) {
  if (ifNvcc) {
    process.stdout.write("awq: nvcc not found; skipping the CUDA addon (the CPU backend still works)\n");
    process.exit(0);
  }
  fail("nvcc not found (set CUDACXX or CUDA_HOME, or put nvcc on PATH)");
}
const cmake = findOnPath("cmake");
if (cmake === null) fail("nvcc was found but cmake is not on PATH; install CMake >= 3.22");

const require = createRequire(import.meta.url);
let headersDir;
let addonApiDir;
try {
  headersDir = require("node-api-headers").include_dir;
  addonApiDir = dirname(require.resolve("node-addon-api/napi.h"));
} catch (err) {
  fail(`node-api-headers / node-addon-api are not installed (${err.message}); run npm install first`);
}

function run(args) {
  const r = spawnSync(cmake, args, { stdio: "inherit", cwd: root });
  if (r.status !== 0) fail(`cmake ${args.join(" ")} exited with ${r.status ?? r.signal}`);
}

const generator = findOnPath("ninja") ? ["-G", "Ninja"] : [];
const configureArgs = [
  "-S",
  nativeDir,
  "-B",
  buildDir,
  ...(existsSync(join(buildDir, "CMakeCache.txt")) ? [] : generator),
  "-DCMAKE_BUILD_TYPE=Release",
  `-DCMAKE_CUDA_COMPILER=${nvcc}`,
  `-DNODE_API_HEADERS_DIR=${headersDir}`,
  `-DNODE_ADDON_API_DIR=${addonApiDir}`,
];
if (process.env.AWQ_CUDA_GENCODE) configureArgs.push(`-DAWQ_CUDA_GENCODE=${process.env.AWQ_CUDA_GENCODE}`);
process.stdout.write(`awq: building the CUDA addon with ${nvcc} (this takes a few minutes)\n`);
run(configureArgs);
const jobs = process.env.AWQ_BUILD_JOBS ?? String(Math.max(1, Math.min(availableParallelism(), 8)));
run(["--build", buildDir, "--parallel", jobs]);
const output = join(buildDir, "awq_native.node");
if (!existsSync(output)) fail(`the build finished but ${output} is missing`);
process.stdout.write(`awq: built ${output}\n`);
