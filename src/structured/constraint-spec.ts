/**
 * What a request constrains its output to: the one value the HTTP routes, the library and the CLI build, and the
 * grammar engine compiles. Field names follow vLLM's `structured_outputs`.
 */

/** A tag the output may open after a trigger (tools with tool_choice "auto"): begin, JSON by schema, end. */
export interface TriggeredTag {
  begin: string;
  schema: Record<string, unknown> | boolean;
  end: string;
}

export type ConstraintSpec =
  /** JSON that validates against the schema (compact: no whitespace between tokens). */
  | { type: "json_schema"; schema: Record<string, unknown> | boolean }
  /** Any JSON object. */
  | { type: "json_object" }
  /** The whole output matches the regular expression (as XGrammar reads it: no lookaround, no backreference). */
  | { type: "regex"; pattern: string }
  /** Exactly one of the strings. */
  | { type: "choice"; choices: string[] }
  /** A grammar in XGrammar's EBNF (GBNF-like: `root ::= ...`). */
  | { type: "grammar"; ebnf: string }
  /**
   * Tags (tool calls) as `begin` + JSON by schema + `end`. required: the output is one or more tags (one when
   * not parallel), separated by newlines; otherwise free text in which each trigger opens one of the tags that
   * start with it (tool_choice "auto").
   */
  | { type: "tool_calls"; tags: TriggeredTag[]; triggers: string[]; required: boolean; parallel: boolean };

/** A stable text for a spec: the compile cache's key. */
export function specKey(spec: ConstraintSpec): string {
  return JSON.stringify(spec, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** Largest constraint text accepted (bytes of its JSON); larger is refused before compiling. */
export const MAX_SPEC_CHARS = 256 * 1024;
