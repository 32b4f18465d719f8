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
import { GrammarError } from "../structured/grammar-engine.js";
import {
  constraintFromFields,
  type FieldConstraint,
  type StructuredBody,
} from "../structured/request-constraint.js";
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

export type { FieldConstraint, StructuredBody } from "../structured/request-constraint.js";

/** The output constraint a body asks for (null = none); 400 for two at once or an option we cannot honour. */
export function constraintFromBody(body: StructuredBody): FieldConstraint | null {
  return constraintFromFields(body, (message, param) => {
    throw badRequest(message, param);
  });
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
