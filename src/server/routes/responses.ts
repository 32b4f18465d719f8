/**
 * POST /v1/responses: OpenAI's Responses API for text, as vLLM serves it. `input` (a string or message items)
 * and `instructions` go through the chat format; one assistant message comes back, whole or as the typed SSE
 * events (response.created, response.in_progress, response.output_item.added, response.content_part.added,
 * response.output_text.delta ..., response.output_text.done, response.content_part.done,
 * response.output_item.done, response.completed / response.incomplete). Responses are not stored, so
 * `previous_response_id` and `store: true` are refused by name, as is every field this server cannot honour.
 */
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { chatPromptTokenIds } from "../chat-prompt.js";
import { admit, checkModel, type ServerContext } from "../context.js";
import { badRequest, engineFailure, toApiError } from "../errors.js";
import type { ChoiceSource, Usage } from "../generation.js";
import {
  checkSampling,
  fitMaxTokens,
  refuseUnsupportedFields,
  responseId,
  samplingFromBody,
} from "../request-params.js";
import { type ChatMessage, RequestIdField } from "../schemas.js";
import { SseWriter } from "../sse.js";
import { choicesOfOnePrompt, startChoices } from "../start-job.js";
import { applyStructuredParams } from "../structured-params.js";
import { validateBody } from "../validate.js";

const Opt = <T extends import("@sinclair/typebox").TSchema>(schema: T) =>
  Type.Optional(Type.Union([schema, Type.Null()]));

const InputPart = Type.Object({
  type: Type.Union([Type.Literal("input_text"), Type.Literal("output_text"), Type.Literal("text")]),
  text: Type.String(),
});

const InputMessage = Type.Object(
  {
    type: Opt(Type.Literal("message")),
    role: Type.Union(["user", "assistant", "system", "developer"].map((r) => Type.Literal(r))),
    content: Type.Union([Type.String(), Type.Array(InputPart)], {
      description: "a string or a list of input_text / output_text parts",
    }),
  },
  { description: "a message item { role, content }" },
);

const TextFormat = Type.Union(
  [
    Type.Object({ type: Type.Literal("text") }),
    Type.Object({ type: Type.Literal("json_object") }),
    Type.Object({
      type: Type.Literal("json_schema"),
      name: Type.String({ minLength: 1 }),
      schema: Type.Record(Type.String(), Type.Unknown()),
      description: Opt(Type.String()),
      strict: Opt(Type.Boolean()),
    }),
  ],
  { description: 'an object { type: "text" | "json_object" | "json_schema", ... }' },
);

export const ResponsesBody = Type.Object({
  model: Opt(Type.String()),
  input: Type.Union([Type.String(), Type.Array(InputMessage, { minItems: 1 })], {
    description: "a string or a non-empty list of message items",
  }),
  instructions: Opt(Type.String()),
  max_output_tokens: Opt(Type.Integer({ minimum: 1 })),
  temperature: Opt(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Opt(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  stream: Opt(Type.Boolean()),
  store: Opt(Type.Boolean()),
  text: Opt(Type.Object({ format: Opt(TextFormat) })),
  metadata: Opt(Type.Record(Type.String(), Type.String())),
  user: Opt(Type.String()),
  safety_identifier: Opt(Type.String()),
  ...RequestIdField,
  previous_response_id: Opt(Type.String()),
  tools: Opt(Type.Array(Type.Unknown())),
  tool_choice: Opt(Type.Unknown()),
  parallel_tool_calls: Opt(Type.Boolean()),
  truncation: Opt(Type.Union([Type.Literal("disabled"), Type.Literal("auto")])),
  background: Opt(Type.Boolean()),
  reasoning: Opt(Type.Unknown()),
  include: Opt(Type.Array(Type.String())),
  top_logprobs: Opt(Type.Integer({ minimum: 0 })),
});
export type ResponsesBody = Static<typeof ResponsesBody>;

/** Fields accepted by the schema (so the 400 can say why) that this server cannot honour. */
function refuseUnsupported(body: ResponsesBody): void {
  const refuse = (param: string, why: string) => {
    throw badRequest(`${param} is not supported on /v1/responses: ${why}`, param);
  };
  if (body.previous_response_id != null) refuse("previous_response_id", "responses are not stored");
  if (body.store === true) refuse("store", "responses are not stored; send store: false or leave it out");
  if (body.tools != null && body.tools.length > 0) refuse("tools", "use /v1/chat/completions for tools");
  if (body.tool_choice != null && body.tool_choice !== "none" && body.tool_choice !== "auto") {
    refuse("tool_choice", "no tools are offered");
  }
  if (body.truncation === "auto") refuse("truncation", 'only "disabled" (a too long input is a 400)');
  if (body.background === true) refuse("background", "responses run in the foreground");
  if (body.reasoning != null) refuse("reasoning", "the model has no reasoning mode");
  if (body.include != null && body.include.length > 0) refuse("include", "there is nothing extra to include");
  if (body.top_logprobs != null) refuse("top_logprobs", "use /v1/chat/completions for logprobs");
  const raw = body as Record<string, unknown>;
  if (raw.conversation != null) refuse("conversation", "conversations are not stored");
  if (raw.prompt != null) refuse("prompt", "there are no stored prompt templates");
  // OpenAI pads stream events with an `obfuscation` field unless include_obfuscation is false; this server
  // does not, so only false (or nothing) is honoured.
  const streamOptions = raw.stream_options as { include_obfuscation?: unknown } | null | undefined;
  if (streamOptions?.include_obfuscation === true) {
    refuse("stream_options.include_obfuscation", "stream events carry no obfuscation padding; send false");
  }
  refuseUnsupportedFields(body, ["metadata"]);
}

/** input + instructions -> chat messages (instructions first, as a system message). */
function messagesOf(body: ResponsesBody): Static<typeof ChatMessage>[] {
  const items: Static<typeof ChatMessage>[] = [];
  if (body.instructions) items.push({ role: "system", content: body.instructions });
  if (typeof body.input === "string") items.push({ role: "user", content: body.input });
  else {
    for (const item of body.input) {
      const content =
        typeof item.content === "string" ? item.content : item.content.map((p) => p.text).join("\n");
      items.push({ role: item.role as Static<typeof ChatMessage>["role"], content });
    }
  }
  return items;
}

export function registerResponses(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/v1/responses", async (request, reply) => {
    const body = validateBody(ResponsesBody, request.body);
    const model = checkModel(ctx, body.model);
    refuseUnsupported(body);
    const promptTokenIds = await chatPromptTokenIds(ctx, messagesOf(body), { addGenerationPrompt: true });
    const params = samplingFromBody(body);
    params.maxTokens = fitMaxTokens(
      ctx,
      promptTokenIds.length,
      body.max_output_tokens,
      "input",
      "max_output_tokens",
    );
    const format = body.text?.format ?? null;
    const responseFormat =
      format === null || format.type === "text"
        ? null
        : format.type === "json_object"
          ? { type: "json_object" as const }
          : {
              type: "json_schema" as const,
              json_schema: { name: format.name, schema: format.schema, strict: format.strict ?? null },
            };
    await applyStructuredParams(ctx, { response_format: responseFormat }, params);
    checkSampling(ctx, params, "max_output_tokens");
    admit(ctx, 1);

    const id = responseId("resp_", body);
    const { job, stopWatching } = startChoices(ctx, request, reply, id, {
      requests: choicesOfOnePrompt(promptTokenIds, params, 1),
    });
    const shape = new ResponseShape(id, model, body);
    try {
      if (body.stream) {
        await streamResponse(reply, job, shape);
        return reply;
      }
      let text = "";
      let finishReason: string | null = null;
      for await (const { output } of job.events()) {
        if (output.finishReason === "error") throw engineFailure(output);
        text += output.textDelta;
        if (output.finished) finishReason = output.finishReason;
      }
      return shape.final(text, finishReason, job.usage());
    } finally {
      stopWatching();
    }
  });
}

/** The response object at each stage (OpenAI's Response). */
class ResponseShape {
  readonly createdAt = Math.floor(Date.now() / 1000);
  readonly messageId: string;

  constructor(
    readonly id: string,
    private readonly model: string,
    private readonly body: ResponsesBody,
  ) {
    this.messageId = `msg_${id.slice(5)}`;
  }

  base(status: string, output: unknown[], usage: Usage | null, incomplete: string | null) {
    const b = this.body;
    return {
      id: this.id,
      object: "response",
      created_at: this.createdAt,
      status,
      error: null,
      incomplete_details: incomplete === null ? null : { reason: incomplete },
      instructions: b.instructions ?? null,
      max_output_tokens: b.max_output_tokens ?? null,
      model: this.model,
      output,
      parallel_tool_calls: b.parallel_tool_calls ?? true,
      previous_response_id: null,
      reasoning: null,
      store: false,
      temperature: b.temperature ?? 1,
      text: { format: b.text?.format ?? { type: "text" } },
      tool_choice: b.tool_choice ?? "auto",
      tools: [],
      top_p: b.top_p ?? 1,
      truncation: b.truncation ?? "disabled",
      usage: usage === null ? null : responseUsage(usage),
      user: b.user ?? null,
      metadata: b.metadata ?? {},
    };
  }

  part(text: string) {
    return { type: "output_text", text, annotations: [], logprobs: [] };
  }

  message(text: string | null, status: string) {
    return {
      type: "message",
      id: this.messageId,
      status,
      role: "assistant",
      content: text === null ? [] : [this.part(text)],
    };
  }

  final(text: string, finishReason: string | null, usage: Usage) {
    const incomplete = finishReason === "length" ? "max_output_tokens" : null;
    const status = incomplete !== null ? "incomplete" : "completed";
    return this.base(
      status,
      [this.message(text, incomplete !== null ? "incomplete" : "completed")],
      usage,
      incomplete,
    );
  }
}

function responseUsage(usage: Usage) {
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: usage.prompt_tokens_details.cached_tokens },
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.total_tokens,
  };
}

async function streamResponse(
  reply: import("fastify").FastifyReply,
  job: ChoiceSource,
  shape: ResponseShape,
): Promise<void> {
  const sse = SseWriter.start(reply);
  let sequence = 0;
  const send = (type: string, fields: Record<string, unknown>) =>
    sse.write(
      `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`,
    );
  const at = { item_id: shape.messageId, output_index: 0, content_index: 0 };
  await send("response.created", { response: shape.base("in_progress", [], null, null) });
  await send("response.in_progress", { response: shape.base("in_progress", [], null, null) });
  await send("response.output_item.added", { output_index: 0, item: shape.message(null, "in_progress") });
  await send("response.content_part.added", { ...at, part: shape.part("") });
  let text = "";
  let finishReason: string | null = null;
  try {
    for await (const { output } of job.events()) {
      if (!sse.open) break;
      if (output.finishReason === "error") throw engineFailure(output);
      if (output.textDelta !== "") {
        text += output.textDelta;
        await send("response.output_text.delta", { ...at, delta: output.textDelta, logprobs: [] });
      }
      if (output.finished) finishReason = output.finishReason;
    }
    if (!sse.open) return;
    const final = shape.final(text, finishReason, job.usage());
    await send("response.output_text.done", { ...at, text, logprobs: [] });
    await send("response.content_part.done", { ...at, part: shape.part(text) });
    await send("response.output_item.done", { output_index: 0, item: final.output[0] });
    await send(final.status === "completed" ? "response.completed" : "response.incomplete", {
      response: final,
    });
  } catch (err) {
    const error = toApiError(err);
    await send("error", { code: error.code ?? error.type, message: error.message, param: error.param });
  }
  sse.end();
}
