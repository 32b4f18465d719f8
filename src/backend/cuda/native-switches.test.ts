import assert from "node:assert/strict";
import { test } from "node:test";
import { checkNativeSwitches, NATIVE_SWITCHES, NativeSwitchError } from "./native-switches.js";

test("unset, empty and accepted values pass", () => {
  checkNativeSwitches({});
  checkNativeSwitches({ AWQ_ATTN_DECODE: "", AWQ_CUDA_GRAPHS: "0" });
  checkNativeSwitches({ AWQ_ATTN_DECODE: "grouped", AWQ_ATTN_BLOCKS_PER_SM: "4", AWQ_GEMV_PF: "16" });
  checkNativeSwitches({ AWQ_GEMM_WS: "1", AWQ_GEMM_WS_VARIANT: "5", AWQ_CUDA_SPLIT_STEP: "0" });
  checkNativeSwitches({ AWQ_GEMM_WS_TMAW: "2", AWQ_GEMM_WS_MIN_ROWS: "1", AWQ_GEMM_WS_VARIANT: "9" });
  checkNativeSwitches({ AWQ_ATTN_PREFILL_BQ: "128", AWQ_ATTN_PREFILL_MASKSKIP: "1" });
  checkNativeSwitches({ AWQ_ATTN_PREFILL_WGMMA: "0", AWQ_ATTN_WGMMA_PP: "0" });
  checkNativeSwitches({ AWQ_GEMM_WS_MMA: "0", AWQ_GEMM_WS_DEEP: "0" });
  checkNativeSwitches({ AWQ_GEMM_WS_MMA: "2" });
});

test("a misspelt value is refused, naming the variable, what it changes and the values it takes", () => {
  assert.throws(
    () => checkNativeSwitches({ AWQ_ATTN_DECODE: "groupd" }),
    /AWQ_ATTN_DECODE="groupd" \(decode attention kernel\): use per-head, grouped, mma, 1, 2, 3/,
  );
  assert.throws(() => checkNativeSwitches({ AWQ_GEMV_PF: "-1" }), /AWQ_GEMV_PF="-1".*integer from 0 to 64/);
  assert.throws(() => checkNativeSwitches({ AWQ_GEMM_WS: "yes" }), /AWQ_GEMM_WS="yes".*use 0, 1/);
  assert.throws(() => checkNativeSwitches({ AWQ_GEMM_WS_MMA: "3" }), /AWQ_GEMM_WS_MMA="3".*use 0, 1, 2/);
  assert.throws(() => checkNativeSwitches({ AWQ_GEMM_WS: "yes" }), NativeSwitchError);
  assert.throws(
    () => checkNativeSwitches({ AWQ_ATTN_PREFILL_BQ: "96" }),
    /AWQ_ATTN_PREFILL_BQ="96".*use 64, 128/,
  );
  assert.throws(
    () => checkNativeSwitches({ AWQ_GEMM_WS_MIN_ROWS: "0" }),
    /AWQ_GEMM_WS_MIN_ROWS="0".*from 1 to/,
  );
});

test("every bad switch is named in one error", () => {
  assert.throws(
    () => checkNativeSwitches({ AWQ_GEMM_WS_VARIANT: "10", AWQ_ATTN_BLOCKS_PER_SM: "0", AWQ_CUDA_SYNC: "1" }),
    (err: Error) =>
      err.message.includes('AWQ_GEMM_WS_VARIANT="10"') &&
      err.message.includes('AWQ_ATTN_BLOCKS_PER_SM="0"') &&
      !err.message.includes("AWQ_CUDA_SYNC"),
  );
});

test("every switch the addon reads is in the table", async () => {
  const { readFile, readdir } = await import("node:fs/promises");
  const { join, dirname, resolve } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
  const known = new Set(NATIVE_SWITCHES.map((r) => r.name));
  const missing: string[] = [];
  for (const dir of ["native/kernels", "native/engine", "native/addon"]) {
    for (const file of await readdir(join(root, dir))) {
      if (!/\.(cu|cuh|cpp|h)$/.test(file)) continue;
      const text = await readFile(join(root, dir, file), "utf8");
      for (const m of text.matchAll(/"(AWQ_[A-Z0-9_]+)"/g))
        if (!known.has(m[1])) missing.push(`${dir}/${file}: ${m[1]}`);
    }
  }
  assert.deepEqual(missing, []);
});
