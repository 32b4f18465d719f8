import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { BackendOptions, KvLayout } from "../backend/backend.js";
import type { ModelSource } from "../model/types.js";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { defaultMaxNumBatchedTokens, type GpuInfo } from "./batch-defaults.js";
import { Engine } from "./engine.js";
import { FakeBackend, fakeModel } from "./fake-backend.test-helper.js";

const GiB = 1024 ** 3;
const H100: GpuInfo = { name: "NVIDIA H100 80GB HBM3", totalMemoryBytes: 79.6 * GiB };
const H200: GpuInfo = { name: "NVIDIA H200", totalMemoryBytes: 140.4 * GiB };
const A100: GpuInfo = { name: "NVIDIA A100-SXM4-80GB", totalMemoryBytes: 79.2 * GiB };
const L4: GpuInfo = { name: "NVIDIA L4", totalMemoryBytes: 22 * GiB };

test("the server gets vLLM's 8192 on a GPU of >= 70 GiB that is not an A100; offline use keeps 2048", () => {
  for (const gpu of [H100, H200]) {
    assert.equal(defaultMaxNumBatchedTokens(gpu, "server", 256), 8192, gpu.name);
    assert.equal(defaultMaxNumBatchedTokens(gpu, "offline", 256), 2048, gpu.name);
  }
  for (const gpu of [A100, L4, undefined]) {
    for (const usage of ["server", "offline"] as const) {
      assert.equal(defaultMaxNumBatchedTokens(gpu, usage, 256), 2048, `${gpu?.name ?? "CPU"} ${usage}`);
    }
  }
});

test("the budget never falls below max-num-seqs (every running sequence gets its decode token)", () => {
  assert.equal(defaultMaxNumBatchedTokens(undefined, "server", 4096), 4096);
  assert.equal(defaultMaxNumBatchedTokens(H100, "server", 10000), 10000);
});

/** A fake backend on a given GPU that keeps the options the engine loaded it with. */
class GpuFakeBackend extends FakeBackend {
  loadedWith: BackendOptions | null = null;
  constructor(readonly gpu: GpuInfo | undefined) {
    super();
  }
  override async load(model: ModelSource, opts: BackendOptions): Promise<KvLayout> {
    this.loadedWith = opts;
    return super.load(model, { ...opts, numBlocks: 64 });
  }
}

let tokenizer: Tokenizer;
before(async () => {
  tokenizer = await Tokenizer.load(fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url)));
});

test("Engine.create takes the default from the backend's GPU and the usage context; a given value wins", async () => {
  const cases = [
    { gpu: H200, usageContext: "server" as const, given: undefined, want: 8192 },
    { gpu: H200, usageContext: undefined, given: undefined, want: 2048 },
    { gpu: A100, usageContext: "server" as const, given: undefined, want: 2048 },
    { gpu: undefined, usageContext: "server" as const, given: undefined, want: 2048 },
    { gpu: H100, usageContext: "server" as const, given: 1024, want: 1024 },
  ];
  for (const c of cases) {
    const backend = new GpuFakeBackend(c.gpu);
    const engine = await Engine.create({
      model: fakeModel(256),
      backend,
      tokenizer,
      maxModelLen: 256,
      usageContext: c.usageContext,
      maxNumBatchedTokens: c.given,
    });
    try {
      assert.equal(backend.loadedWith?.maxNumBatchedTokens, c.want, JSON.stringify(c));
    } finally {
      await engine.shutdown();
    }
  }
});
