import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { openModel } from "../../model/load.js";
import { buildSamplingArrays } from "../sampler-arrays.js";
import { CpuBackend } from "./cpu-backend.js";
import { runDecoderLayer } from "./decoder-layer.js";
import { denseContext } from "./dense-forward.js";

// dist/... -> the project root
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "../../../..");

test("dense layer-by-layer forward (the quantizer's path) equals the paged backend's logits", async () => {
  const model = await openModel(join(repoRoot, "models/tiny-chat-awq"));
  const backend = new CpuBackend();
  await backend.load(model, { maxModelLen: 64, maxNumSeqs: 1, maxNumBatchedTokens: 64, blockSize: 16 });
  await model.checkpoint.close();
  const ids = Int32Array.from([
    1, 4911, 29901, 751, 866, 263, 23281, 515, 278, 21958, 29889, 32000, 4007, 22137, 29901,
  ]);
  const n = ids.length;
  const positions = Int32Array.from({ length: n }, (_, i) => i);
  const paged = await backend.step({
    numSeqs: 1,
    tokenIds: ids,
    positions,
    queryStarts: Int32Array.of(0, n),
    contextLens: Int32Array.of(n),
    maxBlocksPerSeq: 1,
    blockTables: Int32Array.of(2),
    slotMapping: positions.map((p) => 2 * 16 + p),
    sample: Uint8Array.of(1),
    sampling: buildSamplingArrays([{}]),
    returnLogits: true,
  });
  assert.ok(paged.logits !== undefined);

  const cpu = backend.loadedModel;
  assert.ok(cpu !== null);
  const hidden = cpu.embed(ids);
  const ctx = denseContext(cpu.config, n);
  const seen: string[] = [];
  for (const layer of cpu.weights.layers) {
    runDecoderLayer(cpu.scratch, cpu.dims, layer, hidden, n, ctx.rope, ctx.attention, (name, input) => {
      seen.push(`${name}:${input.length / n}`);
    });
  }
  let dense: Float32Array | null = null;
  await cpu.logits(hidden, Int32Array.of(n - 1), (_rows, logits) => {
    dense = logits.slice(0, cpu.config.vocabSize);
  });
  assert.ok(dense !== null);
  const d: Float32Array = dense;
  let maxDiff = 0;
  for (let i = 0; i < d.length; i++) maxDiff = Math.max(maxDiff, Math.abs(d[i] - paged.logits[i]));
  assert.ok(maxDiff < 1e-4, `max logit difference ${maxDiff}`);
  const hd = cpu.config.hiddenSize;
  assert.deepEqual(seen.slice(0, 4), [
    `qkv:${hd}`,
    `o:${hd}`,
    `gateUp:${hd}`,
    `down:${cpu.config.intermediateSize}`,
  ]);
  assert.equal(seen.length, 4 * cpu.config.numLayers);
  await backend.dispose();
});
