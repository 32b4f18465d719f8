/**
 * JSON-schema keywords the grammar engine (XGrammar 0.1.27) compiles but does not enforce: a schema using one
 * would produce output that fails validation. We refuse those up front with the keyword's path, so no schema
 * keyword is silently ignored. Measured by accepting counter-examples with the matcher (see the test).
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
      !FORMATS.has(s.format)
    ) {
      fail("format", `format "${s.format}" is not supported (supported: ${[...FORMATS].join(", ")})`);
    }
    if (Array.isArray(s.allOf) && s.allOf.length > 1)
      fail("allOf", "allOf with more than one schema is not supported");
    const lower = s.minimum !== undefined || s.exclusiveMinimum !== undefined;
    const upper = s.maximum !== undefined || s.exclusiveMaximum !== undefined;
    if (s.exclusiveMinimum !== undefined || s.exclusiveMaximum !== undefined) {
      fail(
        s.exclusiveMinimum !== undefined ? "exclusiveMinimum" : "exclusiveMaximum",
        "exclusive bounds are not supported; use minimum/maximum",
      );
    }
    if (lower && !upper)
      fail("minimum", "a minimum needs a maximum too (a lower bound alone is not enforced)");
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
