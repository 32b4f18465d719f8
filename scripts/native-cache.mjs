// The CMake build folder's cache, checked before configuring: a CMakeCache.txt written for another folder (a
// moved or copied checkout, a packed build folder) or with another generator makes CMake refuse to run, so
// such a folder is cleared and configured afresh.
import { existsSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

function same(a, b) {
  const real = (p) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  return real(a) === real(b);
}

/** The cache's INTERNAL/STRING entries that matter here, or null when there is no cache. */
export function readCmakeCache(buildDir) {
  const file = join(buildDir, "CMakeCache.txt");
  if (!existsSync(file)) return null;
  const entries = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Za-z_][A-Za-z0-9_-]*):[A-Z]+=(.*)$/.exec(line);
    if (m) entries[m[1]] = m[2];
  }
  return entries;
}

/**
 * Why the cache in buildDir cannot be used for sourceDir with this generator ("Ninja", "Unix Makefiles", or
 * null for CMake's default), or null when it can (or there is none).
 */
export function staleCacheReason(buildDir, sourceDir, generator) {
  const cache = readCmakeCache(buildDir);
  if (cache === null) return null;
  const cacheDir = cache.CMAKE_CACHEFILE_DIR;
  if (cacheDir !== undefined && !same(cacheDir, buildDir)) return `it was made in ${cacheDir}`;
  const home = cache.CMAKE_HOME_DIRECTORY;
  if (home !== undefined && !same(home, sourceDir)) return `it was made for the sources in ${home}`;
  if (generator !== null && cache.CMAKE_GENERATOR !== undefined && cache.CMAKE_GENERATOR !== generator) {
    return `it was made with the ${cache.CMAKE_GENERATOR} generator`;
  }
  for (const key of ["NODE_API_HEADERS_DIR", "NODE_ADDON_API_DIR", "CMAKE_CUDA_COMPILER"]) {
    const path = cache[key];
    if (path !== undefined && path !== "" && !existsSync(path)) return `its ${key} ${path} no longer exists`;
  }
  return null;
}

// What CMake and its generators write into the build folder (other files there, e.g. kernel-test builds, stay).
const CMAKE_OUTPUTS = [
  "CMakeCache.txt",
  "CMakeFiles",
  "cmake_install.cmake",
  "build.ninja",
  ".ninja_deps",
  ".ninja_log",
  "Makefile",
  "awq_native.node",
];

/** Clears a stale build folder's CMake outputs; returns why it was stale, or null when it was not. */
export function clearStaleCache(buildDir, sourceDir, generator) {
  const reason = staleCacheReason(buildDir, sourceDir, generator);
  if (reason === null) return null;
  for (const name of CMAKE_OUTPUTS) rmSync(join(buildDir, name), { recursive: true, force: true });
  return reason;
}
