/**
 * JSON-schema keywords the grammar engine (XGrammar 0.1.27) compiles but does not enforce: a schema using one
 * would produce output that fails validation. Numeric bounds are enforced by our own grammar instead
 * (numeric-bounds.ts); the rest are refused up front with the keyword's path, so no schema keyword is
 * silently ignored. Measured by accepting counter-examples with the matcher (see grammar-engine.test.ts).
 */

/** Formats XGrammar enforces for `type: "string"`. */
const FORMATS = new Set([
  "email",
  "date",
  "time",
  "date-time",
  "duration",
  "uuid",
  "uri",
  "uri-reference",
  "ipv4",
  "ipv6",
  "hostname",
]);

/** Keywords that are never enforced (a Map: "then" as an object key would make the object a thenable). */
const UNENFORCED = new Map<string, string>([
  ["not", "not is not supported"],
  ["if", "if/then/else is not supported"],
  ["then", "if/then/else is not supported"],
  ["else", "if/then/else is not supported"],
  ["dependentRequired", "dependentRequired is not supported"],
  ["dependentSchemas", "dependentSchemas is not supported"],
  ["dependencies", "dependencies is not supported"],
  ["contains", "contains is not supported"],
  ["minContains", "minContains is not supported"],
  ["maxContains", "maxContains is not supported"],
  ["multipleOf", "multipleOf is not supported"],
]);

/** Throws an Error naming the first unsupported keyword (as a JSON pointer into the schema). */
export function checkSchemaSupported(schema: unknown): void {
  walk(schema, "");
}

function walk(node: unknown, at: string): void {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) walk(node[i], `${at}/${i}`);
    return;
  }
  if (node === null || typeof node !== "object") return;
  const s = node as Record<string, unknown>;
  const fail = (key: string, why: string) => {
    throw new Error(`${at}/${key}: ${why}`);
  };
  for (const key of Object.keys(s)) {
    const why = UNENFORCED.get(key);
    if (why !== undefined && !isSchemaMapKey(at)) fail(key, why);
  }
  if (!isSchemaMapKey(at)) {
    if (s.uniqueItems === true) fail("uniqueItems", "uniqueItems: true is not supported");
    if (
      typeof s.format === "string" &&
      (s.type === "string" || s.type === undefined) &&
      typeof s.pattern !== "string" &&
      !FORMATS.has(s.format)
    ) {
      fail("format", `format "${s.format}" is not supported (supported: ${[...FORMATS].join(", ")})`);
    }
    if (Array.isArray(s.allOf) && s.allOf.length > 1)
      fail("allOf", "allOf with more than one schema is not supported");
    checkBounds(s, fail);
    // XGrammar takes -1 as no bound and answers other non-integers with a bare number.
    for (const key of ["minLength", "maxLength"]) {
      const v = s[key];
      if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v) || v < 0))
        fail(key, `${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
    }
    // XGrammar ignores minLength / maxLength beside a pattern (refused), and a pattern beside a format it knows.
    // zod writes its formats (email, uuid, date, ...) as a format with the pattern zod checks, so a format
    // beside a pattern is accepted and dropped before compiling (withoutFormatBesidePattern): the pattern
    // governs, as in JSON Schema, where format is an annotation unless a validator opts in.
    if (typeof s.pattern === "string") {
      for (const key of ["minLength", "maxLength"]) {
        if (s[key] !== undefined)
          fail(key, `${key} together with pattern is not supported (put the length in the pattern)`);
      }
    } else if (typeof s.format === "string") {
      // XGrammar's format grammars (email, date, ...) have no length: the bound would be ignored.
      for (const key of ["minLength", "maxLength"]) {
        if (s[key] !== undefined)
          fail(key, `${key} together with format is not supported (use a pattern with the length instead)`);
      }
    }
  }
  for (const [key, value] of Object.entries(s)) {
    if (key === "enum" || key === "const" || key === "default" || key === "examples" || key === "required")
      continue;
    walk(value, `${at}/${key}`);
  }
}

/** Paths whose children are names, not schemas (`properties/<name>`, `$defs/<name>`). */
function isSchemaMapKey(at: string): boolean {
  return /\/(properties|\$defs|definitions|patternProperties)$/.test(at);
}

const BOUNDS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] as const;

/**
 * Numeric bounds are enforced by our own grammar (numeric-bounds.ts) on a schema of type "integer" or "number"
 * (any bounds for integers; whole-number bounds for numbers). Elsewhere they would be ignored: refused.
 */
function checkBounds(s: Record<string, unknown>, fail: (key: string, why: string) => never): void {
  const present = BOUNDS.filter((k) => s[k] !== undefined);
  if (present.length === 0 || s.enum !== undefined || s.const !== undefined) return;
  for (const key of present) {
    const v = s[key];
    if (typeof v !== "number" || !Number.isFinite(v)) fail(key, `${key} must be a number`);
    if (s.type === "number" && !Number.isInteger(v)) {
      fail(key, `a ${key} that is not a whole number (${v}) is not supported for type "number"`);
    }
  }
  if (s.type !== "integer" && s.type !== "number") {
    fail(
      present[0]!,
      `${present[0]} is supported on a schema of type "integer" or "number" (got type ${JSON.stringify(s.type ?? null)}; use anyOf for several types)`,
    );
  }
  if (rangeIsEmpty(s)) fail(present[0]!, "no number satisfies these bounds");
}

function rangeIsEmpty(s: Record<string, unknown>): boolean {
  const n = (k: string) => (typeof s[k] === "number" ? (s[k] as number) : undefined);
  const lows = [n("minimum"), n("exclusiveMinimum")];
  const highs = [n("maximum"), n("exclusiveMaximum")];
  const lo = Math.max(...lows.map((v) => v ?? -Infinity));
  const hi = Math.min(...highs.map((v) => v ?? Infinity));
  if (lo > hi) return true;
  if (lo === hi && (n("exclusiveMinimum") === lo || n("exclusiveMaximum") === hi)) return true;
  if (s.type === "integer") {
    const ilo = n("exclusiveMinimum") === lo ? Math.floor(lo) + 1 : Math.ceil(lo);
    const ihi = n("exclusiveMaximum") === hi ? Math.ceil(hi) - 1 : Math.floor(hi);
    return ilo > ihi;
  }
  return false;
}

/** The schema with `format` removed wherever a `pattern` is beside it (see walk). */
export function withoutFormatBesidePattern(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutFormatBesidePattern);
  if (schema === null || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  const s = schema as Record<string, unknown>;
  const drop = typeof s.pattern === "string" && typeof s.format === "string";
  for (const [k, v] of Object.entries(s)) {
    if (drop && k === "format") continue;
    out[k] =
      k === "enum" || k === "const" || k === "default" || k === "examples"
        ? v
        : withoutFormatBesidePattern(v);
  }
  return out;
}
