/** POST /v1/chat/completions: OpenAI chat completions, streamed (SSE) or not, n choices, logprobs, usage. */
import type { FastifyInstance, FastifyReply } from "fastify";
import type { RequestOutput, SamplingParams } from "../../engine/types.js";
import { parseToolCalls, ToolCallStream } from "../../structured/tool-format.js";
import { beamSearchParams } from "../beam-search-job.js";
import { chatPromptTokenIds } from "../chat-prompt.js";
import { admit, checkModel, type ServerContext } from "../context.js";
import { badRequest, engineFailure, toApiError } from "../errors.js";
import type { ChoiceSource } from "../generation.js";
import {
  applyPromptLogprobs,
  askPromptLogprobs,
  checkBestOf,
  checkSampling,
  checkStreamOptions,
  fitMaxTokens,
  promptLogprobsEntries,
  refuseUnsupportedFields,
  responseId,
  samplingFromBody,
  truncatePrompt,
} from "../request-params.js";
import { ChatCompletionBody } from "../schemas.js";
import { SseWriter, type StreamUsage, streamedChoices, usageOptions } from "../sse.js";
import { choicesOfOnePrompt, startChoices } from "../start-job.js";
import { applyStructuredParams, usesConstraintFields } from "../structured-params.js";
import { chatLogprobs, TokenTexts } from "../token-text.js";
import { toolCallEntry, toolPlanFromBody } from "../tool-calls.js";
import { validateBody } from "../validate.js";

type ChatLogprobEntry = ReturnType<typeof chatLogprobs>[number];

export function registerChatCompletions(app: FastifyInstance, ctx: ServerContext): void {
  const texts = new TokenTexts(ctx.tokenizer);
  app.post("/v1/chat/completions", async (request, reply) => {
    const body = validateBody(ChatCompletionBody, request.body);
    const model = checkModel(ctx, body.model);
    refuseUnsupportedFields(body);
    if (body.tools != null && body.tools.length === 0) {
      throw badRequest("tools is an empty list; send at least one tool, or leave tools out", "tools");
    }
    const tools = toolPlanFromBody(body);
    checkStreamOptions(body);
    const n = body.n ?? 1;
    checkBestOf(body, n);
    const promptTokenIds = truncatePrompt(
      ctx,
      await chatPromptTokenIds(ctx, body.messages, {
        addGenerationPrompt: body.add_generation_prompt,
        continueFinalMessage: body.continue_final_message,
        addSpecialTokens: body.add_special_tokens,
        tools: tools?.tools,
      }),
      body.truncate_prompt_tokens,
    );
    const params = samplingFromBody(body);
    applyPromptLogprobs(ctx, params, body);
    const maxTokensParam = body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
    params.maxTokens = fitMaxTokens(
      ctx,
      promptTokenIds.length,
      body.max_completion_tokens ?? body.max_tokens,
      "messages",
      maxTokensParam,
    );
    // As vLLM: top_logprobs above 0 needs logprobs (0, the default, means nothing either way).
    if (body.top_logprobs != null && body.top_logprobs > 0 && !body.logprobs) {
      throw badRequest("top_logprobs needs logprobs: true", "top_logprobs");
    }
    if (body.logprobs) params.logprobs = body.top_logprobs ?? 0;
    // As vLLM: echo without prompt_logprobs reports the prompt's logprobs, with top_logprobs alternatives
    // (at most what the backend computes), in a response that is not streamed.
    if (body.echo && body.prompt_logprobs == null && !body.stream) {
      const top = Math.min(body.top_logprobs ?? 0, ctx.engine.maxPromptLogprobs ?? 0);
      askPromptLogprobs(ctx, params, top, "top_logprobs");
    }
    // use_beam_search (vLLM's extra parameter): n sequences, best first, all sent when the search ends
    // (streamed as vLLM does: each choice's whole text in one chunk); other sampling fields do not apply.
    const search = body.use_beam_search
      ? beamSearchParams(ctx, body, n, params.maxTokens, params.logprobs ?? null)
      : null;
    const constrained = usesConstraintFields(body) ?? (tools?.constraint ? "tools" : null);
    if (search !== null && constrained !== null) {
      throw badRequest(`${constrained} cannot be combined with use_beam_search`, constrained);
    }
    if (search !== null && body.prompt_logprobs != null) {
      throw badRequest("prompt_logprobs cannot be combined with use_beam_search", "prompt_logprobs");
    }
    await applyStructuredParams(ctx, body, params, tools?.constraint ?? null);
    if (search === null) checkSampling(ctx, params, maxTokensParam);
    admit(ctx, n);

    const id = responseId("chatcmpl-", body);
    const { job, stopWatching } = startChoices(
      ctx,
      request,
      reply,
      id,
      search === null
        ? { requests: choicesOfOnePrompt(promptTokenIds, params, n) }
        : { beamSearch: { prompts: [{ promptTokenIds, maxTokens: search.maxTokens }], params: search } },
    );
    const created = Math.floor(Date.now() / 1000);
    const lastPromptToken = promptTokenIds[promptTokenIds.length - 1] ?? null;
    // echo (vLLM): the reply starts with the last message's text when that message is the assistant's own.
    const final = body.messages[body.messages.length - 1]!;
    const echo = body.echo && final.role === "assistant" ? contentText(final.content) : "";
    const state: ChatState = {
      id,
      created,
      model,
      n,
      params,
      lastPromptToken,
      parseTools: tools?.parse ?? false,
      echo,
      promptTokenIds: body.return_token_ids ? promptTokenIds : null,
      promptLogprobs: params.promptLogprobs !== undefined ? promptTokenIds : null,
    };
    try {
      if (body.stream) {
        await streamChat(reply, job, state, texts, usageOptions(body.stream_options, promptTokenIds.length));
        return reply;
      }
      return await collectChat(job, state, texts);
    } finally {
      stopWatching();
    }
  });
}

interface ChatState {
  id: string;
  created: number;
  model: string;
  n: number;
  params: SamplingParams;
  lastPromptToken: number | null;
  /** Tools were offered (tool_choice other than "none"): calls in the reply become message.tool_calls. */
  parseTools: boolean;
  /** Text the reply starts with (echo), "" for none. */
  echo: string;
  /** return_token_ids: the prompt's ids (and each choice's token_ids); null when not asked. */
  promptTokenIds: number[] | null;
  /** prompt_logprobs: the prompt's ids to report them for; null when not asked. */
  promptLogprobs: number[] | null;
}

/** A message's text (a string or text parts). */
function contentText(content: ChatCompletionBody["messages"][number]["content"]): string {
  if (typeof content === "string") return content;
  return (content ?? []).map((part) => part.text ?? "").join("\n");
}

function finishReasonOf(output: RequestOutput): string | null {
  return output.finished ? (output.finishReason ?? "stop") : null;
}

async function streamChat(
  reply: FastifyReply,
  job: ChoiceSource,
  state: ChatState,
  texts: TokenTexts,
  usage: StreamUsage,
): Promise<void> {
  const sse = SseWriter.start(reply);
  const base = { id: state.id, object: "chat.completion.chunk", created: state.created, model: state.model };
  const previous: (number | null)[] = Array.from({ length: state.n }, () => state.lastPromptToken);
  const wantLogprobs = state.params.logprobs !== undefined;
  // Tool calls: text is streamed as it comes; each call is sent whole (id, name, arguments) once complete.
  const toolStreams = state.parseTools ? Array.from({ length: state.n }, () => new ToolCallStream()) : null;
  const callCounts = Array.from({ length: state.n }, () => 0);
  for (let index = 0; index < state.n; index++) {
    await sse.send({
      ...base,
      choices: [
        { index, delta: { role: "assistant", content: state.echo }, logprobs: null, finish_reason: null },
      ],
      ...(state.promptTokenIds !== null ? { prompt_token_ids: state.promptTokenIds } : {}),
      ...usage.ofChunk(null),
    });
  }
  try {
    for await (const { index, output } of streamedChoices(job, sse)) {
      let finishReason = finishReasonOf(output);
      let text = output.textDelta;
      let toolCalls: ReturnType<typeof toolCallEntry>[] = [];
      const toolStream = toolStreams?.[index];
      if (toolStream !== undefined) {
        const part = toolStream.push(text);
        text = part.content + (finishReason !== null ? toolStream.finish() : "");
        toolCalls = part.calls.map(toolCallEntry);
        callCounts[index]! += toolCalls.length;
        if (finishReason === "stop" && callCounts[index]! > 0) finishReason = "tool_calls";
      }
      // A token that completes no character yet (part of a UTF-8 sequence) is sent with the next one.
      const nothingNew =
        text === "" && toolCalls.length === 0 && !(wantLogprobs && output.tokenIdsDelta.length > 0);
      if (nothingNew && finishReason === null) continue;
      const logprobs = wantLogprobs
        ? { content: chatLogprobs(texts, output.logprobsDelta, previous[index]!) }
        : null;
      previous[index] = output.tokenIdsDelta.at(-1) ?? previous[index]!;
      const firstCall = callCounts[index]! - toolCalls.length;
      const delta = {
        ...(text === "" && (finishReason !== null || toolCalls.length > 0) ? {} : { content: text }),
        ...(toolCalls.length > 0
          ? { tool_calls: toolCalls.map((c, k) => ({ index: firstCall + k, ...c })) }
          : {}),
      };
      await sse.send({
        ...base,
        choices: [
          {
            index,
            delta,
            logprobs,
            finish_reason: finishReason,
            ...(finishReason !== null ? { stop_reason: output.stopReason } : {}),
            ...(state.promptTokenIds !== null ? { token_ids: output.tokenIdsDelta } : {}),
          },
        ],
        ...usage.ofChunk(output),
      });
    }
    if (!sse.open) return;
    if (usage.final) await sse.send({ ...base, choices: [], usage: job.usage() });
    await sse.done();
  } catch (err) {
    // Headers are gone: report in-band as vLLM does, then close the stream properly.
    await sse.send(toApiError(err).body());
    await sse.done();
  }
}

async function collectChat(job: ChoiceSource, state: ChatState, texts: TokenTexts) {
  const content = Array.from({ length: state.n }, () => state.echo);
  const tokenIds: number[][] = Array.from({ length: state.n }, () => []);
  let promptLogprobs: ReturnType<typeof promptLogprobsEntries> | null = null;
  const logprobs: ChatLogprobEntry[][] = Array.from({ length: state.n }, () => []);
  const previous: (number | null)[] = Array.from({ length: state.n }, () => state.lastPromptToken);
  const finish: (RequestOutput | null)[] = Array.from({ length: state.n }, () => null);
  for await (const { index, output } of job.events()) {
    if (output.finishReason === "error") throw engineFailure(output);
    content[index] += output.textDelta;
    tokenIds[index]!.push(...output.tokenIdsDelta);
    if (state.promptLogprobs !== null && promptLogprobs === null && output.promptLogprobs !== undefined) {
      promptLogprobs = promptLogprobsEntries(
        texts,
        state.promptLogprobs,
        output.promptLogprobs,
        state.params.promptLogprobs ?? 0,
      );
    }
    if (state.params.logprobs !== undefined) {
      logprobs[index]!.push(...chatLogprobs(texts, output.logprobsDelta, previous[index]!));
    }
    previous[index] = output.tokenIdsDelta.at(-1) ?? previous[index]!;
    if (output.finished) finish[index] = output;
  }
  return {
    id: state.id,
    object: "chat.completion",
    created: state.created,
    model: state.model,
    choices: content.map((text, index) => {
      const finishReason = finish[index]?.finishReason ?? "abort";
      const reply = state.parseTools ? parseToolCalls(text) : { content: text, calls: [] };
      const message =
        reply.calls.length > 0
          ? {
              role: "assistant",
              content: reply.content === "" ? null : reply.content,
              tool_calls: reply.calls.map(toolCallEntry),
            }
          : { role: "assistant", content: text };
      return {
        index,
        message,
        logprobs: state.params.logprobs !== undefined ? { content: logprobs[index] } : null,
        finish_reason: reply.calls.length > 0 && finishReason === "stop" ? "tool_calls" : finishReason,
        stop_reason: finish[index]?.stopReason ?? null,
        ...(state.promptTokenIds !== null ? { token_ids: tokenIds[index] } : {}),
      };
    }),
    usage: job.usage(),
    ...(state.promptLogprobs !== null ? { prompt_logprobs: promptLogprobs } : {}),
    ...(state.promptTokenIds !== null ? { prompt_token_ids: state.promptTokenIds } : {}),
  };
}
