// Builds the CUDA addon (native/ -> native/build/awq_native.node) with plain CMake and the N-API headers of
// the installed node-api-headers / node-addon-api packages: no network, no node-gyp.
//   node scripts/build-native.mjs             build; fail when nvcc or CMake is missing
//   node scripts/build-native.mjs --if-nvcc   (npm install in a checkout) skip with one line when nvcc is not
//                                             found; when nvcc IS found, a failed build fails the install
//   node scripts/build-native.mjs --prebuild  (npm run prebuild / prepack) the addon the package ships:
//                                             every target, built in native/build/prebuild, copied to
//                                             prebuilds/<platform>-<arch>/ with build-info.json; skipped when
//                                             that prebuilt was made from the same sources (--force rebuilds)
//   --configure-only                          stop after CMake's configure step (tests)
// A build folder whose CMakeCache.txt was made elsewhere (a moved or copied checkout) is cleared first.
// Env: AWQ_CUDA_GENCODE="-gencode=arch=compute_90a,code=sm_90a" limits the targets (quicker local builds);
//      CUDACXX / CUDA_HOME / CUDA_PATH pick the toolkit; AWQ_BUILD_JOBS sets the parallel jobs;
//      AWQ_NO_CMAKE=1 uses the plain-nvcc path that runs when CMake is missing;
//      AWQ_SKIP_NATIVE=1 skips the addon (with --if-nvcc).
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { clearStaleCache } from "./native-cache.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ifNvcc = process.argv.includes("--if-nvcc");
const prebuild = process.argv.includes("--prebuild");
const force = process.argv.includes("--force");
const configureOnly = process.argv.includes("--configure-only");
const nativeDir = join(root, "native");
const buildDir = prebuild ? join(nativeDir, "build", "prebuild") : join(nativeDir, "build");
const prebuiltDir = join(root, "prebuilds", `${process.platform}-${process.arch}`);

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
if (ifNvcc && process.env.AWQ_SKIP_NATIVE === "1") {
  process.stdout.write("awq: AWQ_SKIP_NATIVE=1: CUDA addon not built; CPU backend only\n");
  process.exit(0);
}
const nvcc = findNvcc();
if (nvcc === null) {
  if (ifNvcc) {
    process.stdout.write("awq: nvcc not found: CUDA addon not built; CPU backend only\n");
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
const gencode = process.env.AWQ_CUDA_GENCODE
  ? process.env.AWQ_CUDA_GENCODE.split(/[ ;]+/).filter((g) => g !== "")
  : DEFAULT_GENCODE;

// The addon's sources (what a prebuilt is made from): CMakeLists.txt and addon/ engine/ quant/ kernels/.
function nativeSources() {
  const files = [join(nativeDir, "CMakeLists.txt")];
  for (const sub of ["addon", "engine", "quant", "kernels"]) {
    const dir = join(nativeDir, sub);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) if (/\.(cu|cpp|h|cuh)$/.test(f)) files.push(join(dir, f));
  }
  return files;
}

function sourcesHash() {
  const hash = createHash("sha256");
  for (const f of nativeSources()) {
    hash.update(f.slice(nativeDir.length + 1));
    hash.update("\0");
    hash.update(readFileSync(f));
    hash.update("\0");
  }
  return hash.digest("hex");
}

function nvccVersion() {
  const r = spawnSync(nvcc, ["--version"], { encoding: "utf8" });
  return /release ([0-9.]+)/.exec(r.stdout ?? "")?.[1] ?? "unknown";
}

// --prebuild: the same sources and targets already prebuilt -> nothing to do.
const infoFile = join(prebuiltDir, "build-info.json");
const hashNow = prebuild ? sourcesHash() : "";
if (prebuild && !force && existsSync(infoFile) && existsSync(join(prebuiltDir, "awq_native.node"))) {
  try {
    const info = JSON.parse(readFileSync(infoFile, "utf8"));
    if (info.sourcesHash === hashNow && info.gencode.join(" ") === gencode.join(" ")) {
      process.stdout.write(`awq: ${join(prebuiltDir, "awq_native.node")} is up to date with native/\n`);
      process.exit(0);
    }
  } catch {
    // an unreadable build-info.json: rebuild
  }
}

// After a successful build: copy the addon and what it was made from into prebuilds/.
function publishPrebuilt(output) {
  mkdirSync(prebuiltDir, { recursive: true });
  copyFileSync(output, join(prebuiltDir, "awq_native.node"));
  const info = {
    platform: process.platform,
    arch: process.arch,
    napiVersion: 8,
    gencode,
    nvcc: nvccVersion(),
    sourcesHash: hashNow,
    builtAt: new Date().toISOString(),
  };
  writeFileSync(infoFile, `${JSON.stringify(info, null, 2)}\n`);
  process.stdout.write(`awq: prebuilt addon in ${prebuiltDir}\n`);
}

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
  if (prebuild) publishPrebuilt(join(buildDir, "awq_native.node"));
  process.exit(0);
}
const generatorName = findOnPath("ninja") ? "Ninja" : null;
const stale = clearStaleCache(buildDir, nativeDir, generatorName);
if (stale !== null) {
  process.stdout.write(`awq: cleared the CMake cache in ${buildDir} (${stale})\n`);
}
const configureArgs = [
  "-S",
  nativeDir,
  "-B",
  buildDir,
  ...(existsSync(join(buildDir, "CMakeCache.txt")) || generatorName === null ? [] : ["-G", generatorName]),
  "-DCMAKE_BUILD_TYPE=Release",
  `-DCMAKE_CUDA_COMPILER=${nvcc}`,
  `-DNODE_API_HEADERS_DIR=${headersDir}`,
  `-DNODE_ADDON_API_DIR=${addonApiDir}`,
];
// A plain build keeps the targets its cache was configured with (a quick sm_90a-only folder stays one); the
// prebuilt always names them, so an earlier AWQ_CUDA_GENCODE in its cache cannot stick.
if (prebuild || process.env.AWQ_CUDA_GENCODE) configureArgs.push(`-DAWQ_CUDA_GENCODE=${gencode.join(";")}`);
const targets = prebuild || process.env.AWQ_CUDA_GENCODE ? ` for ${gencode.join(" ")}` : "";
process.stdout.write(`awq: building the CUDA addon with ${nvcc}${targets} (this takes a few minutes)\n`);
run(configureArgs);
if (configureOnly) {
  process.stdout.write(`awq: configured ${buildDir}\n`);
  process.exit(0);
}
const jobs = process.env.AWQ_BUILD_JOBS ?? String(Math.max(1, Math.min(availableParallelism(), 8)));
run(["--build", buildDir, "--parallel", jobs]);
const output = join(buildDir, "awq_native.node");
if (!existsSync(output)) fail(`the build finished but ${output} is missing`);
process.stdout.write(`awq: built ${output}\n`);
if (prebuild) publishPrebuilt(output);
