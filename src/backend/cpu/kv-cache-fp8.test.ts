/** --kv-cache-dtype fp8 on the CPU backend (E4M3 rounding of K and V as written); KV-scale refusal; startup note. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEMO_MODEL } from "../../demo-model.js";
import { Engine } from "../../engine/engine.js";
import { FakeBackend, fakeModel } from "../../engine/fake-backend.test-helper.js";
import { LLM } from "../../llm.js";
import { Tokenizer } from "../../tokenizer/tokenizer.js";
import { checkKvCacheDtypeSupported, fp8CapacityNote, parseKvCacheDtype } from "../kv-cache-dtype.js";
import type { CpuModel } from "./cpu-model.js";
import { roundE4m3 } from "./fp8-e4m3.js";

/** The CPU backend's KV cache (a test peeks at what was stored). */
function cacheOf(llm: LLM): CpuModel["kv"] {
  return (llm.engine.backend as unknown as { model: CpuModel }).model.kv;
}

test("fp8: every K and V value in the CPU cache is an E4M3 value; auto stores them unrounded", async () => {
  const prompt = "In the beginning God created the heaven and the earth.";
  const runs: Record<string, { tokens: number[]; offGrid: number; written: number }> = {};
  for (const kvCacheDtype of ["fp8", "auto"] as const) {
    const llm = await LLM.load({
      model: DEMO_MODEL,
      backend: "cpu",
      maxModelLen: 128,
      numBlocks: 16,
      kvCacheDtype,
    });
    try {
      const [out] = await llm.generate(prompt, { maxTokens: 16, temperature: 0 });
      const kv = cacheOf(llm);
      assert.deepEqual(kv.fp8, kvCacheDtype === "fp8" ? { kScale: 1, vScale: 1 } : undefined);
      let offGrid = 0;
      let written = 0;
      for (const layer of [...kv.keys, ...kv.values]) {
        for (const v of layer) {
          if (v === 0) continue;
          written++;
          if (roundE4m3(v) !== v) offGrid++;
        }
      }
      runs[kvCacheDtype] = { tokens: out!.tokenIds, offGrid, written };
    } finally {
      await llm.dispose();
    }
  }
  assert.ok(runs.fp8!.written > 1000, "the cache was written");
  assert.equal(runs.fp8!.offGrid, 0);
  assert.ok(runs.auto!.offGrid > runs.auto!.written / 2, "auto keeps full precision");
  assert.equal(runs.fp8!.tokens.length, 16);
});

test("fp8 with a checkpoint that carries KV scales is refused before anything loads, naming the tensor", async () => {
  assert.doesNotThrow(() =>
    checkKvCacheDtypeSupported("cpu", "fp8", ["model.layers.0.self_attn.q_proj.qweight"]),
  );
  assert.doesNotThrow(() => checkKvCacheDtypeSupported("cuda", "auto", ["model.layers.0.self_attn.k_scale"]));
  assert.throws(
    () => checkKvCacheDtypeSupported("cpu", "fp8", ["model.layers.3.self_attn.v_scale"]),
    /--kv-cache-dtype fp8: the checkpoint carries KV cache scales \(model\.layers\.3\.self_attn\.v_scale\)/,
  );
  assert.throws(
    () => checkKvCacheDtypeSupported("cuda", "fp8_e4m3", ["model.layers.0.self_attn.k_proj.output_scale"]),
    /KV cache scales \(model\.layers\.0\.self_attn\.k_proj\.output_scale\)/,
  );
  const backend = new FakeBackend();
  Object.defineProperty(backend, "name", { value: "cpu" });
  let loaded = false;
  const load = backend.load.bind(backend);
  backend.load = (...args) => {
    loaded = true;
    return load(...args);
  };
  const model = fakeModel();
  model.checkpoint.names = () => ["model.layers.0.self_attn.kv_scale"];
  const tokenizer = await Tokenizer.load(DEMO_MODEL);
  await assert.rejects(
    Engine.create({ model, backend, tokenizer, kvCacheDtype: "fp8_e4m3" }),
    /--kv-cache-dtype fp8_e4m3: the checkpoint carries KV cache scales \(model\.layers\.0\.self_attn\.kv_scale\)/,
  );
  assert.equal(loaded, false);
});

test("fp8 is taken on CUDA as on the CPU (no opt-in since the GPU check of 2026-12-05); only bad names refused", async () => {
  assert.doesNotThrow(() => checkKvCacheDtypeSupported("cuda", "fp8"));
  assert.doesNotThrow(() => checkKvCacheDtypeSupported("cuda", "fp8_e4m3"));
  assert.throws(() => checkKvCacheDtypeSupported("cuda", "fp8_e5m2" as never), /fp8_e5m2 is not supported/);
  const backend = new FakeBackend();
  Object.defineProperty(backend, "name", { value: "cuda" });
  let kvCacheDtype: string | undefined;
  const load = backend.load.bind(backend);
  backend.load = (source, opts) => {
    kvCacheDtype = opts.kvCacheDtype;
    return load(source, opts);
  };
  const tokenizer = await Tokenizer.load(DEMO_MODEL);
  const engine = await Engine.create({ model: fakeModel(), backend, tokenizer, kvCacheDtype: "fp8" });
  assert.equal(kvCacheDtype, "fp8", "the backend is asked for the fp8 cache");
  await engine.shutdown();
});

test("unknown dtypes are refused by name (fp8_e5m2 with a hint), also from an untyped LLM.load caller", () => {
  assert.throws(
    () => checkKvCacheDtypeSupported("cuda", "fp8_e5m2" as never),
    /fp8_e5m2 is not supported: use fp8 \/ fp8_e4m3/,
  );
  assert.throws(() => parseKvCacheDtype("fp8_e5m2"), /fp8_e5m2 is not supported: use fp8 \/ fp8_e4m3/);
  assert.throws(
    () => parseKvCacheDtype("int8"),
    /--kv-cache-dtype must be auto, fp8 or fp8_e4m3, got "int8"/,
  );
});

test("the startup note: 1-byte E4M3 on CUDA, the capacity an FP8 cache would have on the CPU", () => {
  assert.match(fp8CapacityNote("cpu", "fp8", 1000), /would hold 4000 tokens \(4x\)/);
  assert.match(
    fp8CapacityNote("cuda", "fp8_e4m3", 1000),
    /1-byte E4M3 K and V .*twice the tokens of an fp16/,
  );
  assert.equal(fp8CapacityNote("cpu", "auto", 1000), "");
  assert.equal(fp8CapacityNote("cuda", "auto", 1000), "");
});
