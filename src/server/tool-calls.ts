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
import type { ParsedToolCall } from "../structured/tool-format.js";
import { type ToolBody, type ToolPlan, toolPlanFromFields } from "../structured/tool-plan.js";
import { badRequest } from "./errors.js";

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

export type { ToolBody, ToolPlan } from "../structured/tool-plan.js";

/** The tool plan of a chat body (null: no tools); 400s name the field. */
export function toolPlanFromBody(body: ToolBody): ToolPlan | null {
  return toolPlanFromFields(body, (message, param) => {
    throw badRequest(message, param);
  });
}

/** OpenAI's tool_calls entry of a message. */
export function toolCallEntry(call: ParsedToolCall) {
  return {
    id: `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`,
    type: "function" as const,
    function: { name: call.name, arguments: call.arguments },
  };
}
