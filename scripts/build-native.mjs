// Builds the CUDA addon (native/ -> native/build/awq_native.node) with plain CMake and the N-API headers of
// the installed node-api-headers / node-addon-api packages: no network, no node-gyp.
//   node scripts/build-native.mjs             build; fail when nvcc or CMake is missing
//   node scripts/build-native.mjs --if-nvcc   (npm install) skip with one line when nvcc is not found;
//                                             when nvcc IS found, a failed build fails the install
// Env: AWQ_CUDA_GENCODE="-gencode=arch=compute_90a,code=sm_90a" limits the targets (quicker local builds);
//      CUDACXX / CUDA_HOME / CUDA_PATH pick the toolkit; AWQ_BUILD_JOBS sets the parallel jobs;
//      AWQ_NO_CMAKE=1 uses the plain-nvcc path that runs when CMake is missing;
//      AWQ_SKIP_NATIVE=1 skips the addon (with --if-nvcc, as if nvcc were absent).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

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
const nvcc = process.env.AWQ_SKIP_NATIVE === "1" ? null : findNvcc();
if (nvcc === null) {
  if (ifNvcc) {
    process.stdout.write("awq: nvcc not found; skipping the CUDA addon (the CPU backend still works)\n");
    process.exit(0);
  }
  fail("nvcc not found (set CUDACXX or CUDA_HOME, or put nvcc on PATH)");
}
const cmake = process.env.AWQ_NO_CMAKE === "1" ? null : findOnPath("cmake");

const require = createRequire(import.meta.url);
let headersDir;
let addonApiDir;
try {
  headersDir = require("node-api-headers").include_dir;
  addonApiDir = dirname(require.resolve("node-addon-api/napi.h"));
} catch (err) {
  fail(`node-api-headers / node-addon-api are not installed (${err.message}); run npm install first`);
}

const DEFAULT_GENCODE = [
  "-gencode=arch=compute_90a,code=sm_90a",
  "-gencode=arch=compute_90,code=sm_90",
  "-gencode=arch=compute_80,code=sm_80",
  "-gencode=arch=compute_80,code=compute_80",
];

// Without CMake: the same flags as native/CMakeLists.txt, nvcc for every file, objects newer than their
// sources (and the headers) are reused.
async function buildWithNvcc() {
  const objDir = join(buildDir, "obj");
  mkdirSync(objDir, { recursive: true });
  const sources = [];
  const headers = [];
  for (const sub of ["addon", "engine", "quant", "kernels"]) {
    const dir = join(nativeDir, sub);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      if (/\.(cu|cpp)$/.test(f)) sources.push(join(dir, f));
      else if (/\.(h|cuh)$/.test(f)) headers.push(join(dir, f));
    }
  }
  const newestHeader = Math.max(0, ...headers.map((h) => statSync(h).mtimeMs));
  const gencode = process.env.AWQ_CUDA_GENCODE
    ? process.env.AWQ_CUDA_GENCODE.split(/[ ;]+/)
    : DEFAULT_GENCODE;
  const common = [
    "-std=c++17",
    "-O3",
    "-Xcompiler=-fPIC,-fvisibility=hidden",
    `-I${nativeDir}`,
    `-I${headersDir}`,
    `-I${addonApiDir}`,
    "-DNAPI_VERSION=8",
    "-DNAPI_CPP_EXCEPTIONS",
    "-DNODE_ADDON_API_DISABLE_DEPRECATED",
  ];
  const jobs = [];
  const objects = [];
  for (const src of sources) {
    const obj = join(objDir, `${src.slice(nativeDir.length + 1).replace(/[/\\]/g, "_")}.o`);
    objects.push(obj);
    if (existsSync(obj) && statSync(obj).mtimeMs > Math.max(statSync(src).mtimeMs, newestHeader)) continue;
    const args = src.endsWith(".cu")
      ? [...common, ...gencode, "--expt-relaxed-constexpr", "-lineinfo", "-c", src, "-o", obj]
      : [...common, "-x", "c++", "-c", src, "-o", obj];
    jobs.push(args);
  }
  const parallel = Number(process.env.AWQ_BUILD_JOBS ?? Math.max(1, Math.min(availableParallelism(), 8)));
  const runOne = (args) =>
    new Promise((resolveRun, rejectRun) => {
      const child = spawn(nvcc, args, { stdio: "inherit" });
      child.on("exit", (code) =>
        code === 0 ? resolveRun() : rejectRun(new Error(`nvcc ${args.at(-3)} exited with ${code}`)),
      );
      child.on("error", rejectRun);
    });
  const queue = [...jobs];
  const workers = Array.from({ length: Math.min(parallel, queue.length) }, async () => {
    while (queue.length > 0) await runOne(queue.shift());
  });
  try {
    await Promise.all(workers);
  } catch (err) {
    fail(err.message);
  }
  const link = spawnSync(
    nvcc,
    ["-shared", "--cudart=static", ...gencode, ...objects, "-o", join(buildDir, "awq_native.node")],
    { stdio: "inherit" },
  );
  if (link.status !== 0) fail(`linking awq_native.node exited with ${link.status ?? link.signal}`);
}

function run(args) {
  const r = spawnSync(cmake, args, { stdio: "inherit", cwd: root });
  if (r.status !== 0) fail(`cmake ${args.join(" ")} exited with ${r.status ?? r.signal}`);
}

if (cmake === null) {
  process.stdout.write(
    `awq: building the CUDA addon with ${nvcc} (no CMake found: plain nvcc; a few minutes)\n`,
  );
  await buildWithNvcc();
  process.stdout.write(`awq: built ${join(buildDir, "awq_native.node")}\n`);
  process.exit(0);
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
