/**
 * The request fields that constrain output, as OpenAI and vLLM name them, -> one ConstraintSpec (shared by the
 * HTTP routes and the library):
 *   response_format {type: "text" | "json_object" | "json_schema", json_schema: {name, schema, strict}}
 *   structured_outputs {json, regex, choice, grammar, json_object, ...}   (vLLM)
 *   guided_json, guided_regex, guided_choice, guided_grammar, guided_decoding_backend   (vLLM, older names)
 * At most one per request; an option awq-ts cannot honour is refused through `fail(message, param)`.
 */
import type { ConstraintSpec } from "./constraint-spec.js";

/** Throws the caller's error (a 400, an InvalidParamError) for the field `param`. */
export type Fail = (message: string, param: string) => never;

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
export function constraintFromFields(body: StructuredBody, fail: Fail): FieldConstraint | null {
  const found: FieldConstraint[] = [];
  const rf = body.response_format;
  if (rf != null) {
    if (rf.type === "json_object") found.push({ spec: { type: "json_object" }, param: "response_format" });
    if (rf.type === "json_schema") {
      const js = rf.json_schema;
      if (js == null) {
        fail('response_format of type "json_schema" needs json_schema', "response_format.json_schema");
      }
      // OpenAI: no schema means any JSON object.
      const param = "response_format.json_schema.schema";
      found.push(
        js.schema == null
          ? { spec: { type: "json_object" }, param }
          : { spec: jsonSpec(js.schema, param, fail), param },
      );
    } else if (rf.json_schema != null) {
      fail(
        `response_format.json_schema needs type "json_schema", not ${JSON.stringify(rf.type)}`,
        "response_format.type",
      );
    }
  }
  const so = body.structured_outputs;
  if (so != null) {
    if (so.structural_tag != null) {
      fail("structured_outputs.structural_tag is not supported", "structured_outputs.structural_tag");
    }
    if (so.whitespace_pattern != null) {
      fail("structured_outputs.whitespace_pattern is not supported", "structured_outputs.whitespace_pattern");
    }
    // awq-ts writes JSON compactly (", " and ": ", nothing else) and, as vLLM's XGrammar backend, allows no
    // properties beyond those a schema lists unless it sets additionalProperties.
    if (so.disable_any_whitespace === false) {
      fail(
        "structured_outputs.disable_any_whitespace: false is not supported: JSON output is always compact",
        "structured_outputs.disable_any_whitespace",
      );
    }
    if (so.disable_additional_properties === false) {
      fail(
        "structured_outputs.disable_additional_properties: false is not supported: a schema's unlisted " +
          "properties are allowed only where it sets additionalProperties",
        "structured_outputs.disable_additional_properties",
      );
    }
    if (so.json != null)
      found.push({
        spec: jsonSpec(so.json, "structured_outputs.json", fail),
        param: "structured_outputs.json",
      });
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
    found.push({ spec: jsonSpec(body.guided_json, "guided_json", fail), param: "guided_json" });
  if (body.guided_regex != null)
    found.push({ spec: { type: "regex", pattern: body.guided_regex }, param: "guided_regex" });
  if (body.guided_choice != null)
    found.push({ spec: { type: "choice", choices: body.guided_choice }, param: "guided_choice" });
  if (body.guided_grammar != null)
    found.push({ spec: { type: "grammar", ebnf: body.guided_grammar }, param: "guided_grammar" });
  if (body.guided_whitespace_pattern != null) {
    fail("guided_whitespace_pattern is not supported", "guided_whitespace_pattern");
  }
  const backend = body.guided_decoding_backend;
  if (backend != null && !["xgrammar", "auto"].includes(backend.split(":")[0]!)) {
    fail(
      `guided_decoding_backend ${JSON.stringify(backend)} is not available: awq-ts uses "xgrammar"`,
      "guided_decoding_backend",
    );
  }
  if (found.length > 1) {
    fail(
      `Only one output constraint per request; got ${found.map((f) => f.param).join(" and ")}`,
      found[1]!.param,
    );
  }
  return found[0] ?? null;
}

function jsonSpec(value: unknown, param: string, fail: Fail): ConstraintSpec {
  let schema = value;
  if (typeof value === "string") {
    try {
      schema = JSON.parse(value);
    } catch (err) {
      fail(`${param} is not valid JSON: ${(err as Error).message}`, param);
    }
  }
  if (
    typeof schema !== "boolean" &&
    (schema === null || typeof schema !== "object" || Array.isArray(schema))
  ) {
    fail(`${param} must be a JSON schema object`, param);
  }
  return { type: "json_schema", schema: schema as Record<string, unknown> | boolean };
}
