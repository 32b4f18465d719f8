/**
 * `/params key=value ...` of `awq chat`: sampling settings by their API names (snake_case, as in the HTTP
 * API and vLLM), validated by the engine's own rules before they replace the current ones.
 */
import { resolveSamplingParams } from "../../engine/sampling-params.js";
import type { SamplingParams } from "../../engine/types.js";

type Kind = "number" | "integer" | "boolean" | "strings";

/** API name -> SamplingParams field and how its value is written. */
const SETTABLE: Record<string, { field: keyof SamplingParams; kind: Kind }> = {
  temperature: { field: "temperature", kind: "number" },
  top_p: { field: "topP", kind: "number" },
  top_k: { field: "topK", kind: "integer" },
  min_p: { field: "minP", kind: "number" },
  max_tokens: { field: "maxTokens", kind: "integer" },
  min_tokens: { field: "minTokens", kind: "integer" },
  repetition_penalty: { field: "repetitionPenalty", kind: "number" },
  presence_penalty: { field: "presencePenalty", kind: "number" },
  frequency_penalty: { field: "frequencyPenalty", kind: "number" },
  seed: { field: "seed", kind: "integer" },
  stop: { field: "stop", kind: "strings" },
  ignore_eos: { field: "ignoreEos", kind: "boolean" },
};

export const SETTABLE_PARAMS: readonly string[] = Object.keys(SETTABLE);

/** camelCase and dashes are accepted too: topP, top-p -> top_p. */
function apiName(key: string): string {
  return key
    .replace(/([a-z])([A-Z])/g, "$1_$2")
    .replace(/-/g, "_")
    .toLowerCase();
}

function parseValue(name: string, kind: Kind, raw: string): unknown {
  if (kind === "strings") return raw.split(",").filter((s) => s !== "");
  if (kind === "boolean") {
    if (/^(true|on|yes|1)$/i.test(raw)) return true;
    if (/^(false|off|no|0)$/i.test(raw)) return false;
    throw new Error(`${name} must be true or false, got "${raw}"`);
  }
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value)) throw new Error(`${name} must be a number, got "${raw}"`);
  if (kind === "integer" && !Number.isInteger(value))
    throw new Error(`${name} must be an integer, got "${raw}"`);
  return value;
}

/**
 * Applies `key=value` pairs (space separated; `key=default` removes a setting) to `current` and returns the
 * new settings; throws an Error naming the key and what it expects, leaving `current` untouched.
 */
export function applyParamAssignments(current: SamplingParams, text: string): SamplingParams {
  const next: SamplingParams = { ...current };
  const assignments = text.trim().split(/\s+/).filter(Boolean);
  if (assignments.length === 0)
    throw new Error("expected key=value, e.g. /params temperature=0.2 max_tokens=64");
  for (const assignment of assignments) {
    const eq = assignment.indexOf("=");
    if (eq <= 0) throw new Error(`"${assignment}" is not key=value (e.g. temperature=0.2)`);
    const name = apiName(assignment.slice(0, eq));
    const spec = SETTABLE[name];
    if (!spec) throw new Error(`unknown parameter "${name}"; known: ${SETTABLE_PARAMS.join(", ")}`);
    const raw = assignment.slice(eq + 1);
    if (/^(default|none|null)$/i.test(raw)) delete next[spec.field];
    else (next as Record<string, unknown>)[spec.field] = parseValue(name, spec.kind, raw);
  }
  // The engine's rules (ranges, min_tokens <= max_tokens, ...), checked now rather than at the next answer.
  resolveSamplingParams(next);
  return next;
}

/** One line per set parameter, in API names: what `/params` with no arguments prints. */
export function describeParams(params: SamplingParams): string {
  const lines: string[] = [];
  for (const [name, { field }] of Object.entries(SETTABLE)) {
    const value = params[field];
    if (value === undefined) continue;
    lines.push(`  ${name}=${Array.isArray(value) ? value.join(",") : String(value)}`);
  }
  return lines.length > 0 ? lines.join("\n") : "  (engine defaults)";
}
