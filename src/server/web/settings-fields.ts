/**
 * The settings panel's sampling fields, one entry per API field, and how their values become request
 * fields. Pure (no DOM): page.ts builds the panel's inputs from this list on the server, app.ts reads them
 * in the browser, and unit tests check the mapping. An empty field is not sent: the server's default applies.
 */

export type FieldKind = "number" | "integer" | "stops" | "json-object" | "json-schema" | "boolean";

export interface SettingField {
  /** The input's element id (also its key in the saved settings). */
  id: string;
  /** The request field it fills (snake_case, as on the wire). */
  wire: string;
  label: string;
  kind: FieldKind;
  /** For number inputs: the range the API accepts and the spinner's step. */
  min?: number;
  max?: number;
  step?: string;
  /** One line under the label: what it does and what "empty" means. */
  hint: string;
  placeholder?: string;
}

export const SAMPLING_FIELDS: readonly SettingField[] = [
  {
    id: "temperature",
    wire: "temperature",
    label: "Temperature",
    kind: "number",
    min: 0,
    max: 2,
    step: "0.05",
    hint: "0 = greedy; higher = more varied",
  },
  {
    id: "top-p",
    wire: "top_p",
    label: "Top-p",
    kind: "number",
    min: 0,
    max: 1,
    step: "0.01",
    hint: "(0, 1]",
  },
  { id: "top-k", wire: "top_k", label: "Top-k", kind: "integer", min: -1, step: "1", hint: "-1 or 0 = off" },
  {
    id: "min-p",
    wire: "min_p",
    label: "Min-p",
    kind: "number",
    min: 0,
    max: 1,
    step: "0.01",
    hint: "[0, 1]; 0 = off",
  },
  {
    id: "repetition-penalty",
    wire: "repetition_penalty",
    label: "Repetition penalty",
    kind: "number",
    min: 0,
    step: "0.05",
    hint: "> 0; 1 = off",
  },
  {
    id: "presence-penalty",
    wire: "presence_penalty",
    label: "Presence penalty",
    kind: "number",
    min: -2,
    max: 2,
    step: "0.1",
    hint: "[-2, 2]",
  },
  {
    id: "frequency-penalty",
    wire: "frequency_penalty",
    label: "Frequency penalty",
    kind: "number",
    min: -2,
    max: 2,
    step: "0.1",
    hint: "[-2, 2]",
  },
  {
    id: "seed",
    wire: "seed",
    label: "Seed",
    kind: "integer",
    step: "1",
    hint: "the same seed repeats an answer",
  },
  {
    id: "max-tokens",
    wire: "max_tokens",
    label: "Max tokens",
    kind: "integer",
    min: 1,
    step: "1",
    hint: "empty = up to the context length",
  },
  {
    id: "min-tokens",
    wire: "min_tokens",
    label: "Min tokens",
    kind: "integer",
    min: 0,
    step: "1",
    hint: "no stop before this many",
  },
  {
    id: "stop-strings",
    wire: "stop",
    label: "Stop strings",
    kind: "stops",
    hint: "one per line (at most 16); \\n in a line is a newline",
  },
  {
    id: "ignore-eos",
    wire: "ignore_eos",
    label: "Ignore end of sequence",
    kind: "boolean",
    hint: "run to max tokens",
  },
  {
    id: "logit-bias",
    wire: "logit_bias",
    label: "Logit bias",
    kind: "json-object",
    hint: 'JSON: token id -> bias in [-100, 100], e.g. {"13": -100}',
  },
  {
    id: "json-schema",
    wire: "response_format",
    label: "JSON schema",
    kind: "json-schema",
    hint: "the reply is JSON valid under it",
    placeholder: '{"type": "object", "properties": {...}}',
  },
];

/** A setting that cannot be sent, naming the field by its label. */
export class SettingsError extends Error {
  constructor(
    readonly fieldId: string,
    message: string,
  ) {
    super(message);
    this.name = "SettingsError";
  }
}

/** Values as the inputs hold them: text for every field, a boolean for checkboxes. */
export type SettingValues = Record<string, string | boolean>;

/** The request fields for `values` (field id -> input value); throws SettingsError naming a bad one. */
export function requestParams(values: SettingValues): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const field of SAMPLING_FIELDS) {
    const raw = values[field.id];
    if (raw === undefined || raw === "" || raw === false) continue;
    if (field.kind === "boolean") {
      params[field.wire] = raw === true;
      continue;
    }
    const text = String(raw).trim();
    if (text === "") continue;
    const value = parseField(field, text);
    if (value !== undefined) params[field.wire] = value;
  }
  return params;
}

function parseField(field: SettingField, text: string): unknown {
  const fail = (why: string) => new SettingsError(field.id, `${field.label}: ${why}`);
  switch (field.kind) {
    case "number":
    case "integer": {
      const value = Number(text);
      if (!Number.isFinite(value)) throw fail(`'${text}' is not a number`);
      if (field.kind === "integer" && !Number.isInteger(value)) throw fail(`'${text}' is not a whole number`);
      if (field.min !== undefined && value < field.min) throw fail(`${value} is below ${field.min}`);
      if (field.max !== undefined && value > field.max) throw fail(`${value} is above ${field.max}`);
      return value;
    }
    case "stops": {
      const stops = text
        .split("\n")
        .map((line) => line.replace(/\\n/g, "\n").replace(/\\t/g, "\t"))
        .filter((line) => line !== "");
      if (stops.length > 16) throw fail(`${stops.length} lines; the API takes at most 16`);
      return stops.length === 0 ? undefined : stops;
    }
    case "json-object": {
      const value = parseJson(text, fail);
      if (value === null || typeof value !== "object" || Array.isArray(value))
        throw fail("must be a JSON object");
      return value;
    }
    case "json-schema": {
      const schema = parseJson(text, fail);
      if (schema === null || typeof schema !== "object" || Array.isArray(schema))
        throw fail("must be a JSON object (a JSON Schema)");
      return { type: "json_schema", json_schema: { name: "schema", schema } };
    }
    case "boolean":
      return undefined;
  }
}

function parseJson(text: string, fail: (why: string) => Error): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw fail(`not valid JSON (${(err as Error).message})`);
  }
}
