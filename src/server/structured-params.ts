/**
 * The request fields that constrain output, as OpenAI and vLLM name them, -> SamplingParams:
 *   response_format {type: "text" | "json_object" | "json_schema", json_schema: {name, schema, strict}}
 *   structured_outputs {json, regex, choice, grammar, json_object, ...}   (vLLM)
 *   guided_json, guided_regex, guided_choice, guided_grammar, guided_decoding_backend   (vLLM, older names)
 *   allowed_token_ids, bad_words   (vLLM)
 * At most one output constraint per request. A constraint is compiled here, before the request is queued, so
 * one that cannot be compiled is a 400 naming its field and the grammar engine's reason.
 */
import { Type } from "@sinclair/typebox";
import type { SamplingParams } from "../engine/types.js";
import type { ConstraintSpec } from "../structured/constraint-spec.js";
import { GrammarError } from "../structured/grammar-engine.js";
import type { ServerContext } from "./context.js";
import { badRequest } from "./errors.js";

const Opt = <T extends import("@sinclair/typebox").TSchema>(schema: T) =>
  Type.Optional(Type.Union([schema, Type.Null()]));

const SchemaValue = Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Boolean(), Type.String()], {
  description: "a JSON schema (an object, a boolean, or its JSON text)",
});

/** The TypeBox fields (spread into the chat, completions and /generate body schemas). */
export const StructuredFields = {
  response_format: Opt(
    Type.Object(
      {
        type: Type.Union([Type.Literal("text"), Type.Literal("json_object"), Type.Literal("json_schema")]),
        json_schema: Opt(
          Type.Object({
            name: Type.String({ minLength: 1 }),
            description: Opt(Type.String()),
            schema: Opt(SchemaValue),
            strict: Opt(Type.Boolean()),
          }),
        ),
      },
      { description: 'an object { type: "text" | "json_object" | "json_schema", json_schema? }' },
    ),
  ),
  structured_outputs: Opt(
    Type.Object({
      json: Opt(SchemaValue),
      regex: Opt(Type.String()),
      choice: Opt(Type.Array(Type.String(), { minItems: 1 })),
      grammar: Opt(Type.String()),
      json_object: Opt(Type.Boolean()),
      structural_tag: Opt(Type.Unknown()),
      disable_fallback: Opt(Type.Boolean()),
      disable_any_whitespace: Opt(Type.Boolean()),
      disable_additional_properties: Opt(Type.Boolean()),
      whitespace_pattern: Opt(Type.String()),
    }),
  ),
  guided_json: Opt(SchemaValue),
  guided_regex: Opt(Type.String()),
  guided_choice: Opt(Type.Array(Type.String(), { minItems: 1 })),
  guided_grammar: Opt(Type.String()),
  guided_decoding_backend: Opt(Type.String()),
  guided_whitespace_pattern: Opt(Type.String()),
  allowed_token_ids: Opt(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 })),
  bad_words: Opt(Type.Array(Type.String({ minLength: 1 }))),
};

type Nullable<T> = T | null | undefined;
export interface StructuredBody {
  response_format?: Nullable<{
    type: "text" | "json_object" | "json_schema";
    json_schema?: Nullable<{
      name: string;
      description?: Nullable<string>;
      schema?: Nullable<unknown>;
      strict?: Nullable<boolean>;
    }>;
  }>;
  structured_outputs?: Nullable<{
    json?: Nullable<unknown>;
    regex?: Nullable<string>;
    choice?: Nullable<string[]>;
    grammar?: Nullable<string>;
    json_object?: Nullable<boolean>;
    structural_tag?: unknown;
    disable_fallback?: Nullable<boolean>;
    disable_any_whitespace?: Nullable<boolean>;
    disable_additional_properties?: Nullable<boolean>;
    whitespace_pattern?: Nullable<string>;
  }>;
  guided_json?: Nullable<unknown>;
  guided_regex?: Nullable<string>;
  guided_choice?: Nullable<string[]>;
  guided_grammar?: Nullable<string>;
  guided_decoding_backend?: Nullable<string>;
  guided_whitespace_pattern?: Nullable<string>;
  allowed_token_ids?: Nullable<number[]>;
  bad_words?: Nullable<string[]>;
}

/** A constraint and the request field it came from (for error messages). */
export interface FieldConstraint {
  spec: ConstraintSpec;
  param: string;
}

/** The output constraint a body asks for (null = none); 400 for two at once or an option we cannot honour. */
export function constraintFromBody(body: StructuredBody): FieldConstraint | null {
  const found: FieldConstraint[] = [];
  const rf = body.response_format;
  if (rf != null) {
    if (rf.type === "json_object") found.push({ spec: { type: "json_object" }, param: "response_format" });
    if (rf.type === "json_schema") {
      const js = rf.json_schema;
      if (js == null) {
        throw badRequest(
          'response_format of type "json_schema" needs json_schema',
          "response_format.json_schema",
        );
      }
      // OpenAI: no schema means any JSON object.
      const param = "response_format.json_schema.schema";
      found.push(
        js.schema == null
          ? { spec: { type: "json_object" }, param }
          : { spec: jsonSpec(js.schema, param), param },
      );
    } else if (rf.json_schema != null) {
      throw badRequest(
        `response_format.json_schema needs type "json_schema", not ${JSON.stringify(rf.type)}`,
        "response_format.type",
      );
    }
  }
  const so = body.structured_outputs;
  if (so != null) {
    if (so.structural_tag != null) {
      throw badRequest(
        "structured_outputs.structural_tag is not supported",
        "structured_outputs.structural_tag",
      );
    }
    if (so.whitespace_pattern != null) {
      throw badRequest(
        "structured_outputs.whitespace_pattern is not supported",
        "structured_outputs.whitespace_pattern",
      );
    }
    // awq-ts writes JSON compactly (", " and ": ", nothing else) and, as vLLM's XGrammar backend, allows no
    // properties beyond those a schema lists unless it sets additionalProperties.
    if (so.disable_any_whitespace === false) {
      throw badRequest(
        "structured_outputs.disable_any_whitespace: false is not supported: JSON output is always compact",
        "structured_outputs.disable_any_whitespace",
      );
    }
    if (so.disable_additional_properties === false) {
      throw badRequest(
        "structured_outputs.disable_additional_properties: false is not supported: a schema's unlisted " +
          "properties are allowed only where it sets additionalProperties",
        "structured_outputs.disable_additional_properties",
      );
    }
    if (so.json != null)
      found.push({ spec: jsonSpec(so.json, "structured_outputs.json"), param: "structured_outputs.json" });
    if (so.regex != null)
      found.push({ spec: { type: "regex", pattern: so.regex }, param: "structured_outputs.regex" });
    if (so.choice != null)
      found.push({ spec: { type: "choice", choices: so.choice }, param: "structured_outputs.choice" });
    if (so.grammar != null)
      found.push({ spec: { type: "grammar", ebnf: so.grammar }, param: "structured_outputs.grammar" });
    if (so.json_object === true)
      found.push({ spec: { type: "json_object" }, param: "structured_outputs.json_object" });
  }
  if (body.guided_json != null)
    found.push({ spec: jsonSpec(body.guided_json, "guided_json"), param: "guided_json" });
  if (body.guided_regex != null)
    found.push({ spec: { type: "regex", pattern: body.guided_regex }, param: "guided_regex" });
  if (body.guided_choice != null)
    found.push({ spec: { type: "choice", choices: body.guided_choice }, param: "guided_choice" });
  if (body.guided_grammar != null)
    found.push({ spec: { type: "grammar", ebnf: body.guided_grammar }, param: "guided_grammar" });
  if (body.guided_whitespace_pattern != null) {
    throw badRequest("guided_whitespace_pattern is not supported", "guided_whitespace_pattern");
  }
  const backend = body.guided_decoding_backend;
  if (backend != null && !["xgrammar", "auto"].includes(backend.split(":")[0]!)) {
    throw badRequest(
      `guided_decoding_backend ${JSON.stringify(backend)} is not available: awq-ts uses "xgrammar"`,
      "guided_decoding_backend",
    );
  }
  if (found.length > 1) {
    throw badRequest(
      `Only one output constraint per request; got ${found.map((f) => f.param).join(" and ")}`,
      found[1]!.param,
    );
  }
  return found[0] ?? null;
}

function jsonSpec(value: unknown, param: string): ConstraintSpec {
  let schema = value;
  if (typeof value === "string") {
    try {
      schema = JSON.parse(value);
    } catch (err) {
      throw badRequest(`${param} is not valid JSON: ${(err as Error).message}`, param);
    }
  }
  if (
    typeof schema !== "boolean" &&
    (schema === null || typeof schema !== "object" || Array.isArray(schema))
  ) {
    throw badRequest(`${param} must be a JSON schema object`, param);
  }
  return { type: "json_schema", schema: schema as Record<string, unknown> | boolean };
}

/** Compiles a constraint now: a 400 naming `param` with the grammar engine's reason when it cannot be. */
export async function compileConstraint(ctx: ServerContext, c: FieldConstraint): Promise<void> {
  if (ctx.engine.compileStructuredOutput === undefined) return; // compiled (and reported) by the engine itself
  try {
    await ctx.engine.compileStructuredOutput(c.spec);
  } catch (err) {
    if (err instanceof GrammarError) throw badRequest(`Invalid ${c.param}: ${err.message}`, c.param);
    throw err;
  }
}

/**
 * Sets the constraint fields of `params` from the body, compiling the output constraint (400s as above).
 * `extra` is a constraint the route made itself (tools); it may not be combined with another one.
 */
export async function applyStructuredParams(
  ctx: ServerContext,
  body: StructuredBody,
  params: SamplingParams,
  extra: FieldConstraint | null = null,
): Promise<FieldConstraint | null> {
  let c = constraintFromBody(body);
  if (extra !== null) {
    if (c !== null) {
      throw badRequest(`${c.param} cannot be combined with ${extra.param}`, c.param);
    }
    c = extra;
  }
  if (body.allowed_token_ids != null) params.allowedTokenIds = body.allowed_token_ids;
  if (body.bad_words != null) params.badWords = body.bad_words;
  if (c !== null) {
    await compileConstraint(ctx, c);
    params.structuredOutput = c.spec;
  }
  return c;
}

/** Whether a body uses any constraint field (beam search refuses them). */
export function usesConstraintFields(body: StructuredBody): string | null {
  const c = constraintFromBody(body);
  if (c !== null) return c.param;
  if (body.allowed_token_ids != null) return "allowed_token_ids";
  if (body.bad_words != null) return "bad_words";
  return null;
}
