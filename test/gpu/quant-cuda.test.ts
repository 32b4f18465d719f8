/**
 * CudaQuantMath (awq quantize --backend cuda) through the shared QuantMath conformance suite
 * (test/conformance/quant-math-conformance.ts, the file the CPU runs in `npm test`): the layer forward and its
 * captured statistics within fp16 tolerance of the f32 CPU layer (the GPU layer computes in fp16 like the CUDA
 * engine), the rounding ops bit for bit, and op by op against CpuQuantMath (clip search mostly identical, GPTQ
 * and the column choice close). Then what only the CUDA side has: handle checks, the one-column-range limit of
 * its clip search, and many alloc/release cycles without growth of GPU memory.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { CudaQuantMath } from "../../src/quant/cuda-quant-math.js";
import {
  conformanceLayer,
  QUANT_CONFORMANCE_CONFIG,
  QUANT_CONFORMANCE_SEQLEN,
  runQuantMathConformance,
} from "../conformance/quant-math-conformance.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();
const SEQLEN = QUANT_CONFORMANCE_SEQLEN;
const GROUP = 128;
// Two blocks per chunk: the suite's three blocks run as a full chunk and a partial one.
const createCuda = () => CudaQuantMath.create(QUANT_CONFORMANCE_CONFIG, SEQLEN, { chunkTokens: 2 * SEQLEN });

runQuantMathConformance(
  "cuda",
  async () => {
    const math = await createCuda();
    return {
      math,
      readMatrix: (m) => math.downloadMatrix(m),
      readGram: (g) => math.downloadMatrix(g),
      gramOf: (data, n) => math.uploadGram(data, n),
    };
  },
  {
    forwardTolerance: { residual: 2e-2, absMean: 2e-2, gram: 3e-2 },
    compareWithCpu: true,
    ...(unavailable === null ? {} : { skip: unavailable }),
  },
);

describe("CudaQuantMath: its own handles and limits", { skip: unavailable ?? false }, () => {
  let gpu: CudaQuantMath;
  const { weights, norms, x } = conformanceLayer(11);

  before(async () => {
    gpu = await createCuda();
    for (const w of ["qkv", "o", "gateUp", "down"] as const) {
      const g = await gpu.uploadWeight(w, weights[w]);
      gpu.setLinear(w, g);
      gpu.release(g);
    }
  });
  after(async () => {
    await gpu?.dispose();
  });

  test("a handle that does not exist, and a second column range for the clip search, are refused", async () => {
    const w = await gpu.uploadWeight("o", weights.o);
    const bounds = { kind: "groups", id: -5, groups: 2, outF: 256 } as const;
    assert.throws(() => gpu.groupQuantize(w, GROUP, bounds), /does not exist/);
    const gram = gpu.uploadGram(new Float64Array(256 * 256), 256);
    assert.throws(
      () =>
        gpu.searchClip({ w, groupSize: GROUP, gram, rowScale: null }, [
          [0, 1],
          [2, 3],
        ]),
      /at most one column range/,
    );
    assert.throws(() => gpu.release({ kind: "weight" }), /not a handle/);
    gpu.release(w, gram);
  });

  test("many alloc / release cycles do not grow GPU memory", async () => {
    const base = gpu.memoryStats();
    const h = await gpu.uploadActivations(x);
    const cycle = async (): Promise<void> => {
      const w = await gpu.uploadWeight("down", weights.down);
      const q = gpu.groupQuantize(w, GROUP);
      const d = gpu.dequantize(q);
      const p = gpu.pseudoQuantizeScaled(w, null, GROUP);
      const c = gpu.cloneActivations(h, [1]);
      const stats = await gpu.forward(h, norms, "mlp", "down");
      await gpu.meanSquaredError(c, c); // waits for the stream, frees included
      gpu.release(w, q, d, p, c, stats?.gram);
    };
    for (let i = 0; i < 5; i++) await cycle();
    const warm = gpu.memoryStats();
    for (let i = 0; i < 200; i++) await cycle();
    gpu.release(h);
    const h2 = await gpu.uploadActivations(x);
    await gpu.meanSquaredError(h2, h2); // every earlier free has run on the stream
    const end = gpu.memoryStats();
    gpu.release(h2);
    assert.equal(end.tensors, base.tensors + 1);
    assert.equal(end.tensorBytes, base.tensorBytes + x.length * 4);
    // A leak would hold 200 cycles of weights (hundreds of MiB); pool granularity and timing allow a little.
    const slack = 64 * 2 ** 20;
    assert.ok(
      end.poolUsedBytes <= base.poolUsedBytes + x.length * 4 + slack,
      `pool in use grew: ${base.poolUsedBytes} -> ${end.poolUsedBytes}`,
    );
    assert.ok(
      end.poolReservedBytes <= warm.poolReservedBytes + slack,
      `pool grew: ${warm.poolReservedBytes} -> ${end.poolReservedBytes}`,
    );
  });
});
