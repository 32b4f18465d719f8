/**
 * The environment switches the CUDA addon reads (A/B runs, diagnostics, paths not yet the default). The addon
 * parses them where it uses them and would take a misspelt value as "off"; this table checks every one that is
 * set before the CUDA backend is used, so a typo is an error that names the variable and the values it takes,
 * never a run that silently measured the default path.
 */

interface SwitchRule {
  name: string;
  /** What it changes (for the error message). */
  what: string;
  /** Accepted strings, or an inclusive integer range. */
  values?: readonly string[];
  range?: readonly [number, number];
}

const ON_OFF = ["0", "1"] as const;

export const NATIVE_SWITCHES: readonly SwitchRule[] = [
  { name: "AWQ_CUDA_SYNC", what: "synchronize after every kernel", values: ON_OFF },
  { name: "AWQ_CUDA_GRAPHS", what: "CUDA graphs for decode steps", values: ON_OFF },
  { name: "AWQ_PDL", what: "programmatic dependent launch", values: ON_OFF },
  { name: "AWQ_GEMM_PATH", what: "force a W4A16 GEMM kernel (0 = by m)", values: ["0", "1", "2"] },
  {
    name: "AWQ_GEMM_WS",
    what: "the warp-specialized prefill GEMM (unset: m >= 256; 1: every m > 64)",
    values: ON_OFF,
  },
  {
    name: "AWQ_GEMM_RS128",
    what: "the register-A GEMM for 65..128 rows on all but the widest matrix (on by default)",
    values: ON_OFF,
  },
  { name: "AWQ_GEMM_WS_VARIANT", what: "its tile (0 = by m)", range: [0, 9] },
  { name: "AWQ_GEMM_WS_SK", what: "its stream-K tail", values: ON_OFF },
  {
    name: "AWQ_GEMM_WS_TAIL_ROWS",
    what: "above 256 rows, the rows past the last full 256-row tile run as a linear of their own when at most this many (default 128; 0 off)",
    range: [0, 128],
  },
  { name: "AWQ_GEMM_WS_PF", what: "its weight requests before the previous kernel ends", values: ON_OFF },
  {
    name: "AWQ_GEMM_WS_DEEP",
    what: "its wgmma decode tiles (v6; v7-v9 with AWQ_GEMM_WS_MMA=0) keep three groups in flight (on by default; 0: one)",
    values: ON_OFF,
  },
  {
    name: "AWQ_GEMM_WS_MMA",
    what: "its decode tiles of 8..32 rows (v7-v9) run mma.sync a warp at a time with fp32 scaling per group (1: the default; 0: wgmma; 2: a pair of chunks a stage, not yet run on a GPU)",
    values: ["0", "1", "2"],
  },
  {
    name: "AWQ_GEMM_WS_FIXUP",
    what: "its stream-K owners read several partials of a tile at once (on by default; 0: one after the other)",
    values: ON_OFF,
  },
  {
    name: "AWQ_GEMM_WS_TMAW",
    what: "how its weights arrive (0 bulk copies, 1 TMA boxes: the default, 2 TMA with swizzled words)",
    values: ["0", "1", "2"],
  },
  { name: "AWQ_GEMM_WS_MIN_ROWS", what: "the fewest rows it takes (9 by default)", range: [1, 1 << 20] },
  {
    name: "AWQ_ATTN_PREFILL_WGMMA",
    what: "the wgmma prefill attention on Hopper (fp16 cache, head dim 128; on by default)",
    values: ON_OFF,
  },
  {
    name: "AWQ_ATTN_WGMMA_PP",
    what: "its ping-pong schedule for the fp16 cache (warpgroups taking turns; on by default; 0: pipelined)",
    values: ON_OFF,
  },
  {
    name: "AWQ_ATTN_PREFILL_TMA",
    what: "its ping-pong kernel fed by a TMA producer warpgroup (on by default; 0: the consumers load with cp.async)",
    values: ON_OFF,
  },
  {
    name: "AWQ_ATTN_PREFILL_FP8_TMA",
    what: "the ping-pong kernel for the FP8 cache too, its producer warpgroup widening the tiles (on by default; 0: the consumers widen them)",
    values: ON_OFF,
  },
  {
    name: "AWQ_ATTN_PREFILL_ORDER",
    what: "the wgmma prefill attention's block order (on: the heaviest query tiles of every head first; 0: head by head)",
    values: ON_OFF,
  },
  {
    name: "AWQ_ATTN_PREFILL_BQ",
    what: "queries a block of the mma.sync prefill attention (128 for the FP8 cache, 64 for fp16 by default)",
    values: ["64", "128"],
  },
  {
    name: "AWQ_ATTN_PREFILL_MASKSKIP",
    what: "skip the causal test on its tiles below the diagonal (on for the FP8 cache by default)",
    values: ON_OFF,
  },
  { name: "AWQ_GEMV_VARIANT", what: "force a decode GEMV variant (0 = by shape)", range: [0, 21] },
  {
    name: "AWQ_GEMV_PF",
    what: "decode GEMV L2 prefetch distance in 64-deep chunks (0 = off)",
    range: [0, 64],
  },
  {
    name: "AWQ_GEMV_PF_MODE",
    what: "decode GEMV prefetch instruction (1 bulk, 2 per line)",
    values: ["1", "2"],
  },
  {
    name: "AWQ_FUSED_SILU",
    what: "silu(gate) x up written by the gate|up linear itself (WS GEMM epilogue, GEMV at m <= 8; on by default; 0: the linear, then the SiLU kernel)",
    values: ON_OFF,
  },
  {
    name: "AWQ_GEMV_NARROW_EF",
    what: "evict-first L2 policy on the weights of the narrow decode GEMVs (o, down; m <= 8; on by default, 0 turns it off)",
    values: ON_OFF,
  },
  {
    name: "AWQ_NARROW_GEMV_ROWS",
    what: "the square matrices (o) at 9..N rows on the decode GEMV instead of the WS GEMM (default 16; 0 turns it off)",
    range: [0, 32],
  },
  {
    name: "AWQ_NARROW_GEMV_MAX_K",
    what: "the largest square side on the GEMV under AWQ_NARROW_GEMV_ROWS (default 8192; 0: every matrix with out <= in, down too)",
    range: [0, 65536],
  },
  {
    name: "AWQ_NARROW_GEMV_VARIANT",
    what: "the bulk-copy GEMV variant of AWQ_NARROW_GEMV_ROWS (19 default: 2 tiles a block; 9 one tile, 13 persistent, 20 / 21 4 tiles)",
    values: ["9", "10", "11", "12", "13", "14", "15", "18", "19", "20", "21"],
  },
  { name: "AWQ_GEMV_ADDNORM", what: "residual add + RMSNorm fused into the o / down GEMVs", values: ON_OFF },
  {
    name: "AWQ_ATTN_DECODE",
    what: "decode attention kernel",
    values: ["per-head", "grouped", "mma", "1", "2", "3"],
  },
  { name: "AWQ_ATTN_BLOCKS_PER_SM", what: "split target of the grouped decode kernel", range: [1, 32] },
  {
    name: "AWQ_ATTN_BALANCED",
    what: "the by-KV-head decode kernel on a grid of about one wave, the keys of all sequences cut into equal ranges (off by default)",
    values: ON_OFF,
  },
  {
    name: "AWQ_ATTN_FP8_WIDE",
    what: "16 FP8 elements a lane in the by-KV-head decode kernel (one query head a KV head; 0: 8 elements)",
    values: ON_OFF,
  },
  { name: "AWQ_CUDA_SPLIT_STEP", what: "forward/sample split for masked steps", values: ON_OFF },
  {
    name: "AWQ_CUDA_CHAINED",
    what: "chained decode steps (the addon fills a step's tokens in from the step before it; on by default, 0 turns them off)",
    values: ON_OFF,
  },
];

/** The problem with `value` under `rule`, or null when it is accepted. */
function problem(rule: SwitchRule, value: string): string | null {
  if (rule.values !== undefined) {
    return rule.values.includes(value) ? null : `use ${rule.values.join(", ")}`;
  }
  if (rule.range !== undefined) {
    const [lo, hi] = rule.range;
    const n = Number(value);
    return /^\d+$/.test(value) && n >= lo && n <= hi ? null : `use an integer from ${lo} to ${hi}`;
  }
  return null;
}

/**
 * A switch set to a value the addon does not take: a mistake in how the run was set up, not a missing GPU (the GPU
 * suites fail on it instead of skipping).
 */
export class NativeSwitchError extends Error {
  override name = "NativeSwitchError";
}

/** Throws one error naming every switch set to a value the addon does not take. Unset or empty: default. */
export function checkNativeSwitches(env: NodeJS.ProcessEnv = process.env): void {
  const bad: string[] = [];
  for (const rule of NATIVE_SWITCHES) {
    const value = env[rule.name];
    if (value === undefined || value === "") continue;
    const why = problem(rule, value);
    if (why !== null) bad.push(`${rule.name}="${value}" (${rule.what}): ${why}`);
  }
  if (bad.length > 0) throw new NativeSwitchError(`CUDA backend: bad environment switch: ${bad.join("; ")}`);
}
