/**
 * OpenAI tool calling on /v1/chat/completions: the `tools`, `tool_choice` and `parallel_tool_calls` fields, the
 * constraint they put on the output, and the reply's `message.tool_calls` (whole, or streamed as deltas).
 *   tool_choice "none":     the tools are shown to the model (the chat template gets them); the reply is text.
 *   "auto" (the default):   free text; `<tool_call>` opens a call whose arguments are grammar-constrained.
 *   "required" / named:     the reply is only calls (of that function), arguments always valid.
 *   parallel_tool_calls:    true (default) lets the reply hold several calls; false, at most one.
 * See structured/tool-format.ts for the text convention.
 */
import { randomUUID } from "node:crypto";
import { Type } from "@sinclair/typebox";
import { checkSchemaSupported } from "../structured/schema-support.js";
import { type ParsedToolCall, type ToolFunction, toolCallsSpec } from "../structured/tool-format.js";
import { badRequest } from "./errors.js";
import type { FieldConstraint } from "./structured-params.js";

const Opt = <T extends import("@sinclair/typebox").TSchema>(schema: T) =>
  Type.Optional(Type.Union([schema, Type.Null()]));

const FunctionName = Type.String({
  pattern: "^[a-zA-Z0-9_-]{1,64}$",
  description: "a function name of 1 to 64 letters, digits, underscores or dashes",
});

/** The TypeBox fields of the chat body. */
export const ToolFields = {
  tools: Opt(
    Type.Array(
      Type.Object({
        type: Type.Literal("function"),
        function: Type.Object({
          name: FunctionName,
          description: Opt(Type.String()),
          parameters: Opt(Type.Record(Type.String(), Type.Unknown())),
          strict: Opt(Type.Boolean()),
        }),
      }),
    ),
  ),
  tool_choice: Opt(
    Type.Union(
      [
        Type.Literal("none"),
        Type.Literal("auto"),
        Type.Literal("required"),
        Type.Object({ type: Type.Literal("function"), function: Type.Object({ name: Type.String() }) }),
      ],
      { description: '"none", "auto", "required" or { type: "function", function: { name } }' },
    ),
  ),
  parallel_tool_calls: Opt(Type.Boolean()),
};

/** The message fields of tool calling: an assistant turn's calls, a tool result's call id. */
export const ToolMessageFields = {
  tool_calls: Opt(
    Type.Array(
      Type.Object({
        id: Opt(Type.String()),
        type: Opt(Type.Literal("function")),
        function: Type.Object({ name: Type.String(), arguments: Type.String() }),
      }),
    ),
  ),
  tool_call_id: Opt(Type.String()),
};

type Nullable<T> = T | null | undefined;
export interface ToolBody {
  tools?: Nullable<{ type: "function"; function: ToolFunction & { strict?: Nullable<boolean> } }[]>;
  tool_choice?: Nullable<"none" | "auto" | "required" | { type: "function"; function: { name: string } }>;
  parallel_tool_calls?: Nullable<boolean>;
}

export interface ToolPlan {
  /** Shown to the model (chat template / system text). */
  tools: ToolFunction[];
  /** The output constraint (null for "none"). */
  constraint: FieldConstraint | null;
  /** Whether the reply is parsed for calls (not for "none"). */
  parse: boolean;
}

/** The tool plan of a chat body (null: no tools); 400s name the field. */
export function toolPlanFromBody(body: ToolBody): ToolPlan | null {
  const choice = body.tool_choice ?? null;
  const tools = (body.tools ?? []).map((t) => ({
    name: t.function.name,
    description: t.function.description ?? null,
    parameters: t.function.parameters ?? null,
  }));
  if (tools.length === 0) {
    if (choice !== null && choice !== "none") {
      throw badRequest(`tool_choice ${JSON.stringify(choice)} needs a non-empty tools list`, "tool_choice");
    }
    return null;
  }
  const seen = new Set<string>();
  tools.forEach((t, i) => {
    if (seen.has(t.name))
      throw badRequest(`tools[${i}]: a second function named ${t.name}`, `tools[${i}].function.name`);
    seen.add(t.name);
    try {
      checkSchemaSupported(t.parameters ?? {});
    } catch (err) {
      throw badRequest(
        `tools[${i}].function.parameters${(err as Error).message}`,
        `tools[${i}].function.parameters`,
      );
    }
  });
  if (choice === "none") return { tools, constraint: null, parse: false };
  const parallel = body.parallel_tool_calls ?? true;
  if (choice !== null && typeof choice === "object") {
    const named = tools.find((t) => t.name === choice.function.name);
    if (named === undefined) {
      throw badRequest(
        `tool_choice names function ${JSON.stringify(choice.function.name)}, which is not in tools`,
        "tool_choice.function.name",
      );
    }
    return {
      tools,
      constraint: { spec: toolCallsSpec([named], true, false), param: "tool_choice" },
      parse: true,
    };
  }
  const required = choice === "required";
  return {
    tools,
    constraint: { spec: toolCallsSpec(tools, required, parallel), param: required ? "tool_choice" : "tools" },
    parse: true,
  };
}

/** OpenAI's tool_calls entry of a message. */
export function toolCallEntry(call: ParsedToolCall) {
  return {
    id: `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`,
    type: "function" as const,
    function: { name: call.name, arguments: call.arguments },
  };
}
