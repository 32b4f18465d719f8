/**
 * What the CUDA backend does on any machine (CI has no GPU): loading is guarded and fails with one clear
 * BackendUnavailableError; the config -> addon dims mapping. The GPU suites are in test/gpu/.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { BackendUnavailableError } from "../backend.js";
import { createBackend } from "../create.js";
import { AddonCallOrder, runAddonStep, splitStepEnabled, stepBesideMasks } from "./cuda-backend.js";
import { llama2_13bAwqConfig } from "./latency-bench.js";
import { nativeDims } from "./load-weights.js";
import {
  addonPath,
  formatCudaVersion,
  loadNativeAddon,
  type NativeEngine,
  type NativeStepOutput,
} from "./native-addon.js";

test("a missing addon file is one clear BackendUnavailableError", async () => {
  const saved = process.env.AWQ_NATIVE_ADDON;
  process.env.AWQ_NATIVE_ADDON = "/nonexistent/awq_native.node";
  try {
    await assert.rejects(
      loadNativeAddon(),
      (err: unknown) =>
        err instanceof BackendUnavailableError &&
        /CUDA addon is not built/.test(err.message) &&
        /nvcc/.test(err.message),
    );
  } finally {
    if (saved === undefined) delete process.env.AWQ_NATIVE_ADDON;
    else process.env.AWQ_NATIVE_ADDON = saved;
  }
});

test("a file that is not an addon fails to load with the path in the message", async () => {
  const saved = process.env.AWQ_NATIVE_ADDON;
  const dir = mkdtempSync(join(tmpdir(), "awq-addon-"));
  const garbage = join(dir, "awq_native.node");
  writeFileSync(garbage, "not a shared object");
  try {
    process.env.AWQ_NATIVE_ADDON = garbage;
    await assert.rejects(
      loadNativeAddon(),
      (err: unknown) =>
        err instanceof BackendUnavailableError &&
        /failed to load/.test(err.message) &&
        err.message.includes(garbage),
    );
    // A loadable module without the addon's exports (this test file itself) is refused too.
    process.env.AWQ_NATIVE_ADDON = fileURLToPath(import.meta.url);
    await assert.rejects(
      loadNativeAddon(),
      (err: unknown) =>
        err instanceof BackendUnavailableError && /not the awq_native addon/.test(err.message),
    );
  } finally {
    if (saved === undefined) delete process.env.AWQ_NATIVE_ADDON;
    else process.env.AWQ_NATIVE_ADDON = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--backend auto falls back to the CPU with one message when CUDA cannot run here", async (t) => {
  let usable = false;
  try {
    await loadNativeAddon();
    usable = true;
  } catch (err) {
    assert.ok(err instanceof BackendUnavailableError, "only BackendUnavailableError escapes the loader");
  }
  if (usable) return t.skip("a usable GPU is present");
  const reasons: string[] = [];
  const backend = await createBackend("auto", { onFallback: (r) => reasons.push(r) });
  assert.equal(backend.name, "cpu");
  assert.equal(reasons.length, 1);
  await assert.rejects(createBackend("cuda"), BackendUnavailableError);
  await backend.dispose();
});

test("the addon path points into native/build of this package", () => {
  assert.match(addonPath(), /native\/build\/awq_native\.node$/);
  assert.equal(
    existsSync(join(fileURLToPath(new URL("../../../../", import.meta.url)), "package.json")),
    true,
  );
});

test("nativeDims carries the RoPE variant and the AWQ group size", () => {
  const config = llama2_13bAwqConfig(2);
  const dims = nativeDims(config);
  assert.equal(dims.numLayers, 2);
  assert.equal(dims.groupSize, 128);
  assert.equal(dims.ropeScalingType, 0);
  const dynamic = nativeDims({
    ...config,
    quantization: null,
    ropeScaling: { type: "dynamic", factor: 2, originalMaxPositionEmbeddings: 2048 },
  });
  assert.equal(dynamic.groupSize, 0);
  assert.equal(dynamic.ropeScalingType, 2);
  assert.equal(dynamic.ropeFactor, 2);
  assert.equal(dynamic.ropeOriginalMaxPositions, 2048);
  assert.equal(formatCudaVersion(13000), "13.0");
});

/** A NativeEngine that logs forward() / sample() calls (no GPU); `forwardFails` rejects the launch. */
function fakeEngine(log: string[], forwardFails = false): NativeEngine {
  const output = { tokenIds: Int32Array.of(7) } as NativeStepOutput;
  return {
    forward: async () => {
      log.push("forward");
      if (forwardFails) throw new Error("cuda forward: launch failed");
    },
    sample: async () => {
      log.push("sample");
      return output;
    },
  } as unknown as NativeEngine;
}

test("masks still being written: the forward is launched first, sampling once they are written", async () => {
  const log: string[] = [];
  const batch = {} as Parameters<typeof stepBesideMasks>[1];
  const out = await stepBesideMasks(fakeEngine(log), batch, async () => {
    log.push("masks start");
    await new Promise((resolve) => setTimeout(resolve, 5));
    log.push("masks written");
  });
  assert.deepEqual(log, ["forward", "masks start", "masks written", "sample"]);
  assert.deepEqual(Array.from(out.tokenIds), [7]);
});

test("masks that fail still finish the launched step (sample) before the error; a failed launch samples nothing", async () => {
  const log: string[] = [];
  const batch = {} as Parameters<typeof stepBesideMasks>[1];
  await assert.rejects(
    stepBesideMasks(fakeEngine(log), batch, () => Promise.reject(new Error("worker gone"))),
    /worker gone/,
  );
  assert.deepEqual(log, ["forward", "sample"]);
  log.length = 0;
  await assert.rejects(
    stepBesideMasks(fakeEngine(log, true), batch, () => Promise.resolve()),
    /launch failed/,
  );
  assert.deepEqual(log, ["forward"]);
});

test("a chained step reaches the addon only after the step called before it, even one awaiting its masks", async () => {
  for (const splitStep of [false, true]) {
    const log: string[] = [];
    const engine = {
      ...fakeEngine(log),
      step: async (b: { name: string }) => {
        log.push(`step ${b.name}`);
        return { tokenIds: Int32Array.of(7) } as NativeStepOutput;
      },
    } as unknown as NativeEngine;
    const order = new AddonCallOrder();
    type Batch = Parameters<typeof runAddonStep>[1];
    // The first step's masks are still being written: without the split it waits for them before the addon.
    const first = {
      name: "first",
      masksReady: () => new Promise<void>((resolve) => setTimeout(resolve, 5)),
      sampling: {},
    } as unknown as Batch;
    const chained = { name: "chained", prevTokenRows: Int32Array.of(0), sampling: {} } as unknown as Batch;
    const plain = { name: "plain", sampling: {} } as unknown as Batch;
    await Promise.all([
      runAddonStep(engine, first, splitStep, order),
      runAddonStep(engine, chained, splitStep, order),
    ]);
    // With the split the first step is in the addon from its forward() on (the addon runs the chained one once
    // that step's sample() has finished it).
    assert.deepEqual(log, splitStep ? ["forward", "step chained", "sample"] : ["step first", "step chained"]);
    // A step that is not chained keeps no one waiting, and waits for no one.
    log.length = 0;
    await Promise.all([runAddonStep(engine, first, false, order), runAddonStep(engine, plain, false, order)]);
    assert.deepEqual(log, ["step plain", "step first"]);
  }
});

test("the forward/sample split is on unless AWQ_CUDA_SPLIT_STEP=0", () => {
  assert.equal(splitStepEnabled({}), true);
  assert.equal(splitStepEnabled({ AWQ_CUDA_SPLIT_STEP: "0" }), false);
  assert.equal(splitStepEnabled({ AWQ_CUDA_SPLIT_STEP: "1" }), true);
});
