/**
 * A tiny WebAssembly binary emitter: just enough to assemble the CPU backend's SIMD kernels from TypeScript at
 * run time, so the build needs no WAT compiler (offline, npm-only) and the kernels stay readable as code.
 * Spec: https://webassembly.github.io/spec/core/binary/ (module layout, LEB128, opcodes; SIMD prefix 0xfd).
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof V128;

/** Unsigned LEB128. */
export function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 (for i32.const). */
export function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** Instruction builders: each returns the bytes of one instruction. */
export const op = {
  block: (): number[] => [0x02, 0x40],
  loop: (): number[] => [0x03, 0x40],
  if: (): number[] => [0x04, 0x40],
  else: (): number[] => [0x05],
  end: (): number[] => [0x0b],
  br: (depth: number): number[] => [0x0c, ...uleb(depth)],
  brIf: (depth: number): number[] => [0x0d, ...uleb(depth)],
  get: (local: number): number[] => [0x20, ...uleb(local)],
  set: (local: number): number[] => [0x21, ...uleb(local)],
  tee: (local: number): number[] => [0x22, ...uleb(local)],
  i32Const: (v: number): number[] => [0x41, ...sleb(v)],
  f32Const: (v: number): number[] => {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return [0x43, ...b];
  },
  i32Add: (): number[] => [0x6a],
  i32Sub: (): number[] => [0x6b],
  i32Mul: (): number[] => [0x6c],
  i32Shl: (): number[] => [0x74],
  i32LtU: (): number[] => [0x49],
  i32LtS: (): number[] => [0x48],
  i32LeS: (): number[] => [0x4c],
  i32GeS: (): number[] => [0x4e],
  i32GeU: (): number[] => [0x4f],
  i32Eqz: (): number[] => [0x45],
  f32Load: (offset = 0): number[] => [0x2a, 2, ...uleb(offset)],
  f32Store: (offset = 0): number[] => [0x38, 2, ...uleb(offset)],
  f32Add: (): number[] => [0x92],
  f32Mul: (): number[] => [0x94],
  v128Load: (offset = 0): number[] => [0xfd, ...uleb(0x00), 4, ...uleb(offset)],
  v128Store: (offset = 0): number[] => [0xfd, ...uleb(0x0b), 4, ...uleb(offset)],
  v128Zero: (): number[] => [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)],
  f32x4Splat: (): number[] => [0xfd, ...uleb(0x13)],
  f32x4ExtractLane: (lane: number): number[] => [0xfd, ...uleb(0x1f), lane],
  f32x4Add: (): number[] => [0xfd, ...uleb(0xe4)],
  f32x4Mul: (): number[] => [0xfd, ...uleb(0xe6)],
  f32x4Sub: (): number[] => [0xfd, ...uleb(0xe5)],
  f32x4Max: (): number[] => [0xfd, ...uleb(0xe9)],
  f32x4Nearest: (): number[] => [0xfd, ...uleb(0x6a)],
  f32x4Const: (v: number): number[] => {
    const b = new Uint8Array(new Float32Array([v, v, v, v]).buffer);
    return [0xfd, ...uleb(0x0c), ...b];
  },
  i32x4TruncSatF32x4S: (): number[] => [0xfd, ...uleb(0xf8)],
  i32x4Add: (): number[] => [0xfd, ...uleb(0xae)],
  i32x4Shl: (): number[] => [0xfd, ...uleb(0xab)],
  i32x4Const: (v: number): number[] => {
    const b = new Uint8Array(new Int32Array([v, v, v, v]).buffer);
    return [0xfd, ...uleb(0x0c), ...b];
  },
};

export interface FunctionDef {
  name: string;
  params: ValType[];
  /** Extra locals, numbered after the params. */
  locals: ValType[];
  body: number[];
}

function section(id: number, payload: number[]): number[] {
  return [id, ...uleb(payload.length), ...payload];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

/** A module that imports its memory as env.memory and exports each function (no results). */
export function emitModule(
  functions: FunctionDef[],
  memory: { shared: boolean; maxPages: number },
): Uint8Array<ArrayBuffer> {
  const types = functions.map((f) => [0x60, ...uleb(f.params.length), ...f.params, 0]);
  const memLimits = memory.shared ? [0x03, 1, ...uleb(memory.maxPages)] : [0x01, 1, ...uleb(memory.maxPages)];
  const imports = [[...name("env"), ...name("memory"), 0x02, ...memLimits]];
  const funcs = functions.map((_, i) => uleb(i));
  const exports = functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]);
  const codes = functions.map((f) => {
    const localGroups = f.locals.map((t) => [1, t]);
    const body = [...vector(localGroups), ...f.body, 0x0b];
    return [...uleb(body.length), ...body];
  });
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vector(types)),
    ...section(2, vector(imports)),
    ...section(3, vector(funcs)),
    ...section(7, vector(exports)),
    ...section(10, vector(codes)),
  ];
  return new Uint8Array(bytes);
}
