/** ServerMetrics' cache_config_info reports the engine's cache as configured (vLLM's labels). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEMO_MODEL } from "../demo-model.js";
import { Engine } from "../engine/engine.js";
import { FakeBackend, fakeModel } from "../engine/fake-backend.test-helper.js";
import { Tokenizer } from "../tokenizer/tokenizer.js";
import { ServerMetrics } from "./metrics.js";

for (const kvCacheDtype of ["auto", "fp8", "fp8_e4m3"] as const) {
  test(`vllm:cache_config_info says cache_dtype="${kvCacheDtype}" for --kv-cache-dtype ${kvCacheDtype}`, async () => {
    const tokenizer = await Tokenizer.load(DEMO_MODEL);
    const engine = await Engine.create({
      model: fakeModel(),
      backend: new FakeBackend(),
      tokenizer,
      kvCacheDtype,
    });
    const metrics = new ServerMetrics(engine, "m");
    try {
      const { body } = await metrics.render();
      assert.match(
        body,
        new RegExp(
          `^vllm:cache_config_info\\{block_size="16",cache_dtype="${kvCacheDtype}",.*num_gpu_blocks="${engine.numBlocks}",engine="0"\\} 1$`,
          "m",
        ),
      );
    } finally {
      metrics.close();
      await engine.shutdown();
    }
  });
}
