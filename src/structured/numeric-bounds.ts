/**
 * Numeric bounds (minimum, maximum, exclusiveMinimum, exclusiveMaximum) enforced by a grammar of our own.
 * XGrammar 0.1.27 compiles them but gets them wrong (measured: `{type: integer, minimum: 3}` accepts 2,
 * `{minimum: -20}` refuses -3, `{type: number, exclusiveMinimum: 0}` accepts 0 and refuses 0.5), and they are
 * what zod writes for `.int()`, `.nonnegative()`, `.positive()`, `.min(n)`, `.max(n)`. So before compiling, each
 * bounded integer or number schema is replaced by a marker constant; in XGrammar's EBNF of the schema the
 * marker's literal is then replaced by a rule that spells exactly the numbers in range:
 *   integer: the classic digit-range construction, sign and length by length (no leading zeros);
 *   number: an integer in range, or a fraction (no exponent) whose whole part keeps it in range. Number bounds
 *   must be whole numbers (what zod writes); a fractional one is refused by checkSchemaSupported.
 */

const BOUND_KEYS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] as const;

/** A schema with its bounded numbers replaced by marker constants, and the EBNF rule of each marker. */
export interface BoundedRewrite {
  schema: unknown;
  /** Marker literal as XGrammar writes it in EBNF (`"\"marker\""`) -> the rule's body. */
  rules: Map<string, string>;
}

/** Whether a (sub)schema is a number or integer with a bound we enforce. */
function boundedNumeric(s: Record<string, unknown>): "integer" | "number" | null {
  if (s.type !== "integer" && s.type !== "number") return null;
  if (s.enum !== undefined || s.const !== undefined) return null; // the values are listed: XGrammar enforces them
  return BOUND_KEYS.some((k) => typeof s[k] === "number") ? s.type : null;
}

/** Rewrites every bounded integer / number; `rules` is empty when there is none. */
export function rewriteNumericBounds(schema: unknown): BoundedRewrite {
  const rules = new Map<string, string>();
  const nonce = Math.random().toString(36).slice(2, 10);
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== "object") return node;
    const s = node as Record<string, unknown>;
    const kind = boundedNumeric(s);
    if (kind !== null) {
      const marker = `awq-bounded-${nonce}-${rules.size}`;
      rules.set(`"\\"${marker}\\""`, numericRule(kind, s));
      return { const: marker };
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) {
      // Values that are data, not schemas, are kept as they are.
      out[k] = k === "enum" || k === "const" || k === "default" || k === "examples" ? v : walk(v);
    }
    return out;
  };
  return { schema: walk(schema), rules };
}

/** Puts the rules into XGrammar's EBNF of the rewritten schema. */
export function applyNumericRules(ebnf: string, rules: Map<string, string>): string {
  let out = ebnf;
  let i = 0;
  const defs: string[] = [];
  for (const [literal, body] of rules) {
    const name = `awq_bounded_${i++}`;
    if (!out.includes(literal))
      throw new Error(`internal: bounded-number marker ${literal} not found in the grammar`);
    out = out.split(literal).join(name);
    defs.push(`${name} ::= ${body}`);
  }
  return `${out.trimEnd()}\n${defs.join("\n")}\n`;
}

type Bound = bigint | null; // null = unbounded

/** The EBNF body for one bounded integer / number schema. */
export function numericRule(kind: "integer" | "number", s: Record<string, unknown>): string {
  const num = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : undefined);
  const [min, max, xmin, xmax] = [
    num("minimum"),
    num("maximum"),
    num("exclusiveMinimum"),
    num("exclusiveMaximum"),
  ];
  // The tightest whole-number range of integers allowed.
  let lo: Bound = null;
  let hi: Bound = null;
  const raise = (b: bigint) => {
    if (lo === null || b > lo) lo = b;
  };
  const lower = (b: bigint) => {
    if (hi === null || b < hi) hi = b;
  };
  if (min !== undefined) raise(BigInt(Math.ceil(min)));
  if (xmin !== undefined) raise(BigInt(Math.floor(xmin)) + 1n);
  if (max !== undefined) lower(BigInt(Math.floor(max)));
  if (xmax !== undefined) lower(BigInt(Math.ceil(xmax)) - 1n);
  const alts: string[] = [];
  const ints = intRange(lo, hi);
  if (ints !== null) alts.push(ints);
  if (kind === "number") {
    // A fraction I.F (F not all zeros) lies strictly between I and I + 1: its whole part I must keep the open
    // interval inside the bounds, which (bounds being whole numbers) is I >= L and I + 1 <= U.
    const defined = (...v: (number | undefined)[]) => v.filter((x): x is number => x !== undefined);
    const lows = defined(min, xmin);
    const highs = defined(max, xmax);
    const lowB: Bound = lows.length === 0 ? null : BigInt(Math.max(...lows));
    const highB: Bound = highs.length === 0 ? null : BigInt(Math.min(...highs));
    const frac = `"." [0-9]* [1-9]`;
    // Positive fractions: I in [max(L, 0), U - 1].
    const pos = natRange(maxB(lowB, 0n) ?? 0n, highB === null ? null : highB - 1n);
    if (pos !== null) alts.push(`(${pos}) ${frac}`);
    // Negative fractions -(I.F) lie in (-(I + 1), -I): I in [max(-U, 0), -L - 1].
    const neg = natRange(maxB(highB === null ? null : -highB, 0n) ?? 0n, lowB === null ? null : -lowB - 1n);
    if (neg !== null) alts.push(`"-" (${neg}) ${frac}`);
  }
  if (alts.length === 0) throw new RangeError("no number satisfies the bounds");
  return alts.map((a) => `(${a})`).join(" | ");
}

function maxB(a: Bound, b: Bound): Bound {
  if (a === null) return b;
  if (b === null) return a;
  return a > b ? a : b;
}

/** Integers in [lo, hi] (null = unbounded) as EBNF, or null when there are none. */
export function intRange(lo: Bound, hi: Bound): string | null {
  if (lo !== null && hi !== null && lo > hi) return null;
  const alts: string[] = [];
  // Non-negative part: [max(lo, 0), hi].
  if (hi === null || hi >= 0n) {
    const r = natRange(lo === null || lo < 0n ? 0n : lo, hi);
    if (r !== null) alts.push(r);
  }
  // Negative part: -m for m in [max(-hi, 1), -lo].
  if (lo === null || lo < 0n) {
    const r = natRange(hi === null || hi >= 0n ? 1n : -hi, lo === null ? null : -lo);
    if (r !== null) alts.push(`"-" (${r})`);
  }
  return alts.length === 0 ? null : alts.map((a) => `(${a})`).join(" | ");
}

/** Natural numbers in [lo, hi] (0 <= lo; hi null = unbounded), decimal without leading zeros, as EBNF. */
export function natRange(lo: bigint, hi: bigint | null): string | null {
  if (hi !== null && lo > hi) return null;
  const alts: string[] = [];
  const loDigits = lo.toString().length;
  const lastLen = hi === null ? loDigits : hi.toString().length;
  for (let n = loDigits; n <= lastLen; n++) {
    const first = n === loDigits ? lo : 10n ** BigInt(n - 1);
    const last = hi !== null && n === lastLen ? hi : 10n ** BigInt(n) - 1n;
    if (first <= last) alts.push(sameLength(first.toString(), last.toString().padStart(n, "0")));
  }
  // Unbounded: every longer number.
  if (hi === null) alts.push(`[1-9] ${"[0-9] ".repeat(loDigits)}[0-9]*`);
  return alts.map((a) => `(${a})`).join(" | ");
}

/** Digit strings of one length from a to b (a <= b), as EBNF. */
function sameLength(a: string, b: string): string {
  const n = a.length;
  if (n === 0) return `""`;
  const any = (k: number) => (k === 0 ? "" : ` ${"[0-9] ".repeat(k).trimEnd()}`);
  if (a === b) return `"${a}"`;
  if (a[0] === b[0]) return `"${a[0]}" (${sameLength(a.slice(1), b.slice(1))})`;
  const restA = a.slice(1);
  const restB = b.slice(1);
  const aFull = /^0*$/.test(restA);
  const bFull = /^9*$/.test(restB);
  const a0 = Number(a[0]);
  const b0 = Number(b[0]);
  const alts: string[] = [];
  // The first digit a0: rest from restA up; b0: rest up to restB; between: any rest.
  const midLo = aFull ? a0 : a0 + 1;
  const midHi = bFull ? b0 : b0 - 1;
  if (!aFull) alts.push(`"${a[0]}" (${sameLength(restA, "9".repeat(n - 1))})`);
  if (midLo <= midHi) alts.push(`${midLo === midHi ? `"${midLo}"` : `[${midLo}-${midHi}]`}${any(n - 1)}`);
  if (!bFull) alts.push(`"${b[0]}" (${sameLength("0".repeat(n - 1), restB)})`);
  return alts.map((x) => `(${x})`).join(" | ");
}
