/**
 * The library's (LLM.generate / chat / stream) names for output constraints and tools, as the openai SDK spells
 * them in camelCase at the top level: responseFormat (OpenAI's response_format object), structuredOutputs
 * (vLLM's structured_outputs object), tools / toolChoice / parallelToolCalls. They become the engine's
 * SamplingParams.structuredOutput; an invalid one throws through `fail` (InvalidParamError in llm.ts).
 */
import {
  constraintFromFields,
  type Fail,
  type FieldConstraint,
  type StructuredBody,
} from "./request-constraint.js";
import type { ToolFunction } from "./tool-format.js";
import { type ToolPlan, toolPlanFromFields } from "./tool-plan.js";

export interface StructuredCallOptions {
  /** OpenAI's response_format: `{type: "json_object"}` or `{type: "json_schema", json_schema: {name, schema}}`. */
  responseFormat?: NonNullable<StructuredBody["response_format"]>;
  /** vLLM's structured_outputs: `{json}`, `{regex}`, `{choice}`, `{grammar}` or `{json_object: true}`. */
  structuredOutputs?: NonNullable<StructuredBody["structured_outputs"]>;
}

export interface ToolCallOptions {
  /** Functions the model may call (chat only): name, description, JSON schema of the arguments. */
  tools?: ToolFunction[];
  /** "auto" (default with tools), "none", "required", or `{ name }` of one function. */
  toolChoice?: "none" | "auto" | "required" | { name: string };
  /** Several calls in one reply (default true). */
  parallelToolCalls?: boolean;
}

/** The output constraint of library options (null = none). */
export function constraintFromOptions(opts: StructuredCallOptions, fail: Fail): FieldConstraint | null {
  const c = constraintFromFields(
    { response_format: opts.responseFormat, structured_outputs: opts.structuredOutputs },
    (message, param) => fail(message, camel(param)),
  );
  return c === null ? null : { spec: c.spec, param: camel(c.param) };
}

/** The tool plan of library options (null = no tools). */
export function toolPlanFromOptions(opts: ToolCallOptions, fail: Fail): ToolPlan | null {
  const choice = opts.toolChoice;
  const plan = toolPlanFromFields(
    {
      tools: opts.tools?.map((f) => ({ type: "function" as const, function: f })),
      tool_choice:
        choice !== undefined && typeof choice === "object"
          ? { type: "function", function: { name: choice.name } }
          : choice,
      parallel_tool_calls: opts.parallelToolCalls,
    },
    (message, param) => fail(message, camel(param)),
  );
  return plan?.constraint
    ? { ...plan, constraint: { ...plan.constraint, param: camel(plan.constraint.param) } }
    : plan;
}

/** `response_format.json_schema` -> `responseFormat.json_schema`: the top-level name as the library spells it. */
function camel(param: string): string {
  return param.replace(/^[a-z_]+/, (head) => head.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()));
}
