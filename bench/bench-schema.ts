/**
 * The JSON schema both structured-output benchmarks constrain with (bench/structured-bench.ts on a model,
 * bench/structured-fill.ts on the grammar engine alone): bounded free strings, an array of objects, integers in
 * ranges (our own grammar), an enum, so a model stays busy for many tokens.
 */
import type { ConstraintSpec } from "../src/structured/constraint-spec.js";

export const schema = {
  type: "object",
  properties: {
    title: { type: "string", maxLength: 40 },
    kind: { enum: ["list", "table", "note"] },
    items: {
      type: "array",
      items: {
        type: "object",
        properties: {
          name: { type: "string", maxLength: 20 },
          qty: { type: "integer", minimum: 0, maximum: 999 },
        },
        required: ["name", "qty"],
        additionalProperties: false,
      },
      maxItems: 8,
    },
  },
  required: ["title", "kind", "items"],
  additionalProperties: false,
};

export const benchSpec: ConstraintSpec = { type: "json_schema", schema };
