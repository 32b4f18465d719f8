/** The shared QuantMath conformance suite on CpuQuantMath, the reference (CUDA runs it from test/gpu/). */
import { CpuQuantMath } from "../src/quant/cpu-quant-math.js";
import {
  QUANT_CONFORMANCE_CONFIG,
  QUANT_CONFORMANCE_SEQLEN,
  runQuantMathConformance,
} from "./conformance/quant-math-conformance.js";

runQuantMathConformance(
  "cpu",
  async () => ({
    math: new CpuQuantMath(QUANT_CONFORMANCE_CONFIG, QUANT_CONFORMANCE_SEQLEN),
    readMatrix: async (m) => m.data,
    readGram: async (g) => g.data,
    gramOf: (data, n) => ({ data, n }),
  }),
  { forwardTolerance: { residual: 0, absMean: 0, gram: 0 } },
);
