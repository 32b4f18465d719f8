/**
 * POST /v1/completions: OpenAI (legacy) completions. Prompts as a string, strings, token ids or lists of
 * token ids; n choices per prompt (choice index = prompt * n + i); echo; `logprobs: N` in the completions
 * format (tokens, token_logprobs, top_logprobs, text_offset); streamed or not.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RequestOutput, TokenLogprob } from "../../engine/types.js";
import { beamSearchParams } from "../beam-search-job.js";
import { admit, checkModel, type ServerContext } from "../context.js";
import { badRequest, engineFailure, toApiError } from "../errors.js";
import type { ChoiceRequest, ChoiceSource, Usage } from "../generation.js";
import { encodeText } from "../prompt-encoding.js";
import {
  applyPromptLogprobs,
  askPromptLogprobs,
  checkBestOf,
  checkSampling,
  checkStreamOptions,
  checkTokenIds,
  fitMaxTokens,
  paramsForChoice,
  promptLogprobsEntries,
  refuseUnsupportedFields,
  responseId,
  samplingFromBody,
  truncatePrompt,
} from "../request-params.js";
import { CompletionBody } from "../schemas.js";
import { SseWriter, type StreamUsage, streamedChoices, usageOptions } from "../sse.js";
import { startChoices } from "../start-job.js";
import { applyStructuredParams, usesConstraintFields } from "../structured-params.js";
import { type CompletionLogprobs, completionLogprobs, TokenTexts } from "../token-text.js";
import { validateBody } from "../validate.js";

/** OpenAI's and vLLM's default for completions. */
const DEFAULT_COMPLETION_MAX_TOKENS = 16;

interface Prompt {
  text: string;
  tokenIds: number[];
}

export function registerCompletions(app: FastifyInstance, ctx: ServerContext): void {
  const texts = new TokenTexts(ctx.tokenizer);
  app.post("/v1/completions", async (request, reply) => {
    const body = validateBody(CompletionBody, request.body);
    const model = checkModel(ctx, body.model);
    refuseUnsupportedFields(body);
    if (body.suffix) throw badRequest("suffix is not supported by this server", "suffix");
    checkStreamOptions(body);
    const n = body.n ?? 1;
    checkBestOf(body, n);
    const topN = body.logprobs ?? null;
    if (body.max_tokens === 0 && !body.echo) {
      throw badRequest(
        "max_tokens 0 needs echo: true (it scores the prompt without generating)",
        "max_tokens",
      );
    }
    const prompts = await readPrompts(
      ctx,
      body.prompt,
      body.truncate_prompt_tokens,
      body.add_special_tokens ?? true,
    );
    const constrained = usesConstraintFields(body);
    if (body.use_beam_search && constrained !== null) {
      throw badRequest(`${constrained} cannot be combined with use_beam_search`, constrained);
    }
    if (body.use_beam_search && body.prompt_logprobs != null) {
      throw badRequest("prompt_logprobs cannot be combined with use_beam_search", "prompt_logprobs");
    }
    if (body.use_beam_search && body.max_tokens === 0) {
      throw badRequest("max_tokens 0 (prompt scoring) cannot be combined with use_beam_search", "max_tokens");
    }
    if (body.use_beam_search) return beamSearchCompletions(ctx, request, reply, body, model, prompts, texts);
    const base = samplingFromBody(body);
    applyPromptLogprobs(ctx, base, body);
    await applyStructuredParams(ctx, body, base);
    if (topN !== null) base.logprobs = topN;
    // Echo with logprobs shows the prompt's logprobs too (the first prompt token has none).
    if (topN !== null && body.echo) askPromptLogprobs(ctx, base, topN, "logprobs");
    const requests: ChoiceRequest[] = [];
    prompts.forEach((prompt, promptIndex) => {
      const params = { ...base, maxTokens: maxTokensFor(ctx, body, prompts, promptIndex) };
      checkSampling(ctx, params);
      for (let i = 0; i < n; i++) {
        requests.push({
          promptTokenIds: prompt.tokenIds,
          params: paramsForChoice(params, i, n),
          promptIndex,
        });
      }
    });
    admit(ctx, requests.length);

    const id = responseId("cmpl-", body);
    const { job, stopWatching } = startChoices(ctx, request, reply, id, { requests });
    const choicePrompts = requests.map((req) => prompts[req.promptIndex]!);
    const state = completionState(ctx, body, id, model, choicePrompts, topN);
    try {
      if (body.stream) {
        const usage = usageOptions(body.stream_options, 0);
        await streamCompletions(reply, job, state, texts, usage);
        return reply;
      }
      return await collectCompletions(job, state, texts);
    } finally {
      stopWatching();
    }
  });
}

/** max_tokens of one prompt, settled against the context (default 16, as OpenAI and vLLM). */
function maxTokensFor(
  ctx: ServerContext,
  body: CompletionBody,
  prompts: Prompt[],
  promptIndex: number,
): number {
  const prompt = prompts[promptIndex]!;
  const promptParam = prompts.length > 1 ? `prompt[${promptIndex}]` : "prompt";
  const remaining = ctx.maxModelLen - prompt.tokenIds.length;
  // max_tokens 0 (echo only): the engine runs one step, whose token is dropped (as vLLM does).
  const requested =
    body.max_tokens === 0
      ? 1
      : (body.max_tokens ?? Math.min(DEFAULT_COMPLETION_MAX_TOKENS, Math.max(remaining, 1)));
  return fitMaxTokens(ctx, prompt.tokenIds.length, requested, promptParam, "max_tokens");
}

function completionState(
  ctx: ServerContext,
  body: CompletionBody,
  id: string,
  model: string,
  choicePrompts: Prompt[],
  topN: number | null,
): CompletionState {
  return {
    id,
    created: Math.floor(Date.now() / 1000),
    model,
    choices: choicePrompts.map((prompt) => ({
      prompt,
      echo: body.echo ? prompt : null,
      // After a prompt of only skipped special tokens (BOS for ""), the completion starts the text,
      // so its first token has no leading space (as the engine's detokenizer gives it).
      previous:
        (body.skip_special_tokens ?? true) && prompt.tokenIds.every((id) => ctx.tokenizer.isSpecial(id))
          ? null
          : (prompt.tokenIds.at(-1) ?? null),
      textLength: 0,
    })),
    topN,
    scoreOnly: body.max_tokens === 0,
    returnTokenIds: body.return_token_ids ?? false,
    promptLogprobs: body.prompt_logprobs ?? null,
  };
}

/**
 * use_beam_search (vLLM's extra parameter): n sequences per prompt, best first, answered at the end. vLLM
 * does not stream beam search (it answers plain JSON to stream: true, which an SSE client cannot read),
 * so stream: true is refused by name. logprobs work as for sampling (the prompt's, for echo, are null).
 */
async function beamSearchCompletions(
  ctx: ServerContext,
  request: FastifyRequest,
  reply: FastifyReply,
  body: CompletionBody,
  model: string,
  prompts: Prompt[],
  texts: TokenTexts,
) {
  if (body.stream) {
    throw badRequest(
      "stream is not supported with use_beam_search on /v1/completions: beam search answers once, " +
        "when the search ends (vLLM does not stream it either); send stream: false",
      "stream",
    );
  }
  const n = body.n ?? 1;
  const topN = body.logprobs ?? null;
  const searches = prompts.map((prompt, promptIndex) => ({
    promptTokenIds: prompt.tokenIds,
    maxTokens: maxTokensFor(ctx, body, prompts, promptIndex),
  }));
  const params = beamSearchParams(ctx, body, n, searches[0]!.maxTokens, topN);
  admit(ctx, prompts.length * n);
  const id = responseId("cmpl-", body);
  const { job, stopWatching } = startChoices(ctx, request, reply, id, {
    beamSearch: { prompts: searches, params },
  });
  const choicePrompts = prompts.flatMap((prompt) => Array<Prompt>(n).fill(prompt));
  try {
    return await collectCompletions(job, completionState(ctx, body, id, model, choicePrompts, topN), texts);
  } finally {
    stopWatching();
  }
}

async function readPrompts(
  ctx: ServerContext,
  prompt: CompletionBody["prompt"],
  truncate: number | null | undefined,
  addBos: boolean,
): Promise<Prompt[]> {
  // add_special_tokens (vLLM, default true): the BOS before a text prompt; token-id prompts are taken as sent.
  const fromText = async (text: string, param: string): Promise<Prompt> => {
    const all = await encodeText(ctx, text, param, { addBos });
    const kept = truncatePrompt(ctx, all, truncate);
    // Truncated (truncate_prompt_tokens): what is echoed is the text of the tokens kept.
    return kept === all ? { text, tokenIds: all } : fromIds(kept, param);
  };
  const fromIds = (all: number[], param: string): Prompt => {
    checkTokenIds(ctx, all, param);
    const ids = truncatePrompt(ctx, all, truncate);
    // Echoed as text: a leading BOS is not part of it (as for a string prompt); later special tokens are.
    const leadingSpecial = ids.length > 0 && ctx.tokenizer.isSpecial(ids[0]!);
    return { text: ctx.tokenizer.decode(leadingSpecial ? ids.slice(1) : ids), tokenIds: ids };
  };
  if (typeof prompt === "string") return [await fromText(prompt, "prompt")];
  if (typeof prompt[0] === "number") return [fromIds(prompt as number[], "prompt")];
  if (typeof prompt[0] === "string")
    return Promise.all((prompt as string[]).map((text, i) => fromText(text, `prompt[${i}]`)));
  return (prompt as number[][]).map((ids, i) => fromIds(ids, `prompt[${i}]`));
}

interface ChoiceText {
  prompt: Prompt;
  /** The prompt to put before the completion (echo), sent with the first output, then null. */
  echo: Prompt | null;
  /** The token before the next one (for token texts). */
  previous: number | null;
  /**
   * text_offset of the next token: the token texts so far (as vLLM counts), not the text sent, which lags
   * behind while a possible stop string is held back.
   */
  textLength: number;
}

interface CompletionState {
  id: string;
  created: number;
  model: string;
  choices: ChoiceText[];
  topN: number | null;
  /** echo with max_tokens 0: the prompt alone, its one generated token dropped. */
  scoreOnly: boolean;
  /** return_token_ids: each choice carries prompt_token_ids and token_ids. */
  returnTokenIds: boolean;
  /** prompt_logprobs N: each choice carries vLLM's prompt_logprobs list (top N); null when not asked. */
  promptLogprobs: number | null;
}

/** The usage of a response (the dropped token of prompt scoring is not a completion token). */
function usageOf(job: ChoiceSource, state: CompletionState): Usage {
  const usage = job.usage();
  if (!state.scoreOnly) return usage;
  return { ...usage, completion_tokens: 0, total_tokens: usage.prompt_tokens };
}

/** Text and logprobs of one output delta (after the echoed prompt on the first); advances the choice. */
function deltaOf(state: CompletionState, texts: TokenTexts, index: number, output: RequestOutput) {
  const choice = state.choices[index]!;
  if (state.scoreOnly) output = { ...output, textDelta: "", tokenIdsDelta: [], logprobsDelta: [] };
  let text = output.textDelta;
  let logprobs: CompletionLogprobs | null = null;
  if (choice.echo) {
    const prompt = choice.echo;
    choice.echo = null;
    text = prompt.text + text;
    if (state.topN !== null) {
      logprobs = promptLogprobs(texts, prompt, output.promptLogprobs ?? [], state.topN);
    }
    choice.textLength = prompt.text.length;
  }
  if (state.topN !== null) {
    const generated = completionLogprobs(
      texts,
      output.logprobsDelta,
      choice.previous,
      choice.textLength,
      state.topN,
    );
    logprobs = logprobs ? appendLogprobs(logprobs, generated) : generated;
    for (const token of generated.tokens) choice.textLength += token.length;
  }
  choice.previous = output.tokenIdsDelta.at(-1) ?? choice.previous;
  return { text, logprobs };
}

/**
 * Logprobs of the echoed prompt tokens: null where the engine gave none (always for the first token,
 * which nothing predicts). A leading special token (BOS) is not in the echoed text, so it takes no space,
 * and the token after it is decoded as the start of a text (no leading space), so that each text_offset
 * points at its token inside the echoed text. SentencePiece tokenizers (legacy Llama) also put a space in front
 * of the token that follows a special token ("<|end_of_turn|>GPT4" -> "<|end_of_turn|>", " G", ...) that the
 * echoed prompt does not have: such a token's offset points at its text less that space, and the offsets after
 * it stay on the prompt's characters. The engine has no alternatives for prompt positions, so top_logprobs
 * holds the prompt token itself (as vLLM always includes it) rather than nothing.
 */
function promptLogprobs(
  texts: TokenTexts,
  prompt: { text: string; tokenIds: readonly number[] },
  entries: readonly (TokenLogprob | null)[],
  topN: number,
): CompletionLogprobs {
  const { tokenIds, text: promptText } = prompt;
  const result: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let offset = 0;
  const leadingSpecial = tokenIds.length > 0 && texts.isSpecial(tokenIds[0]!);
  tokenIds.forEach((id, i) => {
    const previous = i === 0 || (i === 1 && leadingSpecial) ? null : tokenIds[i - 1]!;
    const token = texts.text(id, previous);
    const entry = entries[i] ?? null;
    result.tokens.push(token);
    result.text_offset.push(offset);
    if (entry) {
      const withTop = completionLogprobs(texts, [entry], previous, offset, topN);
      const top = withTop.top_logprobs[0]!;
      if (top !== null && !(token in top)) top[token] = withTop.token_logprobs[0]!;
      result.token_logprobs.push(withTop.token_logprobs[0]!);
      result.top_logprobs.push(top);
    } else {
      result.token_logprobs.push(null);
      result.top_logprobs.push(null);
    }
    if (i === 0 && texts.isSpecial(id)) return;
    const insertedSpace =
      token.startsWith(" ") &&
      !promptText.startsWith(token, offset) &&
      promptText.startsWith(token.slice(1), offset);
    offset = Math.min(promptText.length, offset + token.length - (insertedSpace ? 1 : 0));
  });
  return result;
}

function appendLogprobs(into: CompletionLogprobs, more: CompletionLogprobs): CompletionLogprobs {
  into.tokens.push(...more.tokens);
  into.token_logprobs.push(...more.token_logprobs);
  into.top_logprobs.push(...more.top_logprobs);
  into.text_offset.push(...more.text_offset);
  return into;
}

async function streamCompletions(
  reply: FastifyReply,
  job: ChoiceSource,
  state: CompletionState,
  texts: TokenTexts,
  usage: StreamUsage,
): Promise<void> {
  const sse = SseWriter.start(reply);
  const base = { id: state.id, object: "text_completion", created: state.created, model: state.model };
  const chunk = (
    index: number,
    text: string,
    logprobs: CompletionLogprobs | null,
    output: RequestOutput,
    first: boolean,
  ) => ({
    ...base,
    choices: [
      {
        index,
        text,
        logprobs,
        finish_reason: output.finished ? output.finishReason : null,
        ...(output.finished ? { stop_reason: output.stopReason } : {}),
        ...(state.returnTokenIds
          ? {
              token_ids: state.scoreOnly ? [] : output.tokenIdsDelta,
              ...(first ? { prompt_token_ids: state.choices[index]!.prompt.tokenIds } : {}),
            }
          : {}),
      },
    ],
    ...usage.ofChunk(output),
  });
  const sent = new Set<number>();
  try {
    for await (const { index, output } of streamedChoices(job, sse)) {
      // A token that completes no character yet (part of a UTF-8 sequence) is sent with the next one.
      const first = !sent.has(index);
      const nothingNew = output.textDelta === "" && !(state.topN !== null && output.tokenIdsDelta.length > 0);
      const mustSend = first && (state.choices[index]!.echo !== null || state.returnTokenIds);
      if (nothingNew && !mustSend && !output.finished) continue;
      sent.add(index);
      const delta = deltaOf(state, texts, index, output);
      await sse.send(chunk(index, delta.text, delta.logprobs, output, first));
    }
    if (!sse.open) return;
    if (usage.final) await sse.send({ ...base, choices: [], usage: usageOf(job, state) });
    await sse.done();
  } catch (err) {
    await sse.send(toApiError(err).body());
    await sse.done();
  }
}

async function collectCompletions(job: ChoiceSource, state: CompletionState, texts: TokenTexts) {
  const text = state.choices.map(() => "");
  const logprobs: (CompletionLogprobs | null)[] = state.choices.map(() =>
    state.topN === null ? null : { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
  );
  const finish: (RequestOutput | null)[] = state.choices.map(() => null);
  const tokenIds: number[][] = state.choices.map(() => []);
  const promptLogprobs: (ReturnType<typeof promptLogprobsEntries> | null)[] = state.choices.map(() => null);
  for await (const { index, output } of job.events()) {
    if (output.finishReason === "error") throw engineFailure(output);
    if (!state.scoreOnly) tokenIds[index]!.push(...output.tokenIdsDelta);
    if (state.promptLogprobs !== null && output.promptLogprobs !== undefined) {
      promptLogprobs[index] = promptLogprobsEntries(
        texts,
        state.choices[index]!.prompt.tokenIds,
        output.promptLogprobs,
        state.promptLogprobs,
      );
    }
    const delta = deltaOf(state, texts, index, output);
    text[index] += delta.text;
    const all = logprobs[index];
    if (all && delta.logprobs) appendLogprobs(all, delta.logprobs);
    if (output.finished) finish[index] = output;
  }
  return {
    id: state.id,
    object: "text_completion",
    created: state.created,
    model: state.model,
    choices: text.map((choiceText, index) => ({
      index,
      text: choiceText,
      logprobs: logprobs[index],
      finish_reason: finish[index]?.finishReason ?? "abort",
      stop_reason: finish[index]?.stopReason ?? null,
      ...(state.promptLogprobs !== null ? { prompt_logprobs: promptLogprobs[index] } : {}),
      ...(state.returnTokenIds
        ? { prompt_token_ids: state.choices[index]!.prompt.tokenIds, token_ids: tokenIds[index] }
        : {}),
    })),
    usage: usageOf(job, state),
  };
}
