/**
 * OpenAI's tools / tool_choice / parallel_tool_calls -> what the model is shown and the constraint on its reply
 * (shared by the HTTP route and the library; see server/tool-calls.ts for the semantics of each choice).
 */
import type { Fail, FieldConstraint } from "./request-constraint.js";
import { checkSchemaSupported } from "./schema-support.js";
import { type ToolFunction, toolCallsSpec } from "./tool-format.js";

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
export function toolPlanFromFields(body: ToolBody, fail: Fail): ToolPlan | null {
  const choice = body.tool_choice ?? null;
  const tools = (body.tools ?? []).map((t) => ({
    name: t.function.name,
    description: t.function.description ?? null,
    parameters: t.function.parameters ?? null,
  }));
  if (tools.length === 0) {
    if (choice !== null && choice !== "none") {
      fail(`tool_choice ${JSON.stringify(choice)} needs a non-empty tools list`, "tool_choice");
    }
    return null;
  }
  const seen = new Set<string>();
  tools.forEach((t, i) => {
    if (seen.has(t.name)) fail(`tools[${i}]: a second function named ${t.name}`, `tools[${i}].function.name`);
    seen.add(t.name);
    try {
      checkSchemaSupported(t.parameters ?? {});
    } catch (err) {
      fail(`tools[${i}].function.parameters${(err as Error).message}`, `tools[${i}].function.parameters`);
    }
  });
  if (choice === "none") return { tools, constraint: null, parse: false };
  const parallel = body.parallel_tool_calls ?? true;
  if (choice !== null && typeof choice === "object") {
    const named = tools.find((t) => t.name === choice.function.name);
    if (named === undefined) {
      fail(
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
