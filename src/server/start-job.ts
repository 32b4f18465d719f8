/**
 * Starts the choices of one HTTP request, sampled (GenerationJob) or by beam search (BeamSearchJob): the job,
 * its metrics (latencies from the HTTP request's arrival), its per-request log line, and the abort when the
 * client goes away. Shared by every generating route.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { BeamSearchParams } from "../engine/beam-search.js";
import type { SamplingParams } from "../engine/types.js";
import { BeamSearchJob, type BeamSearchPrompt } from "./beam-search-job.js";
import type { ServerContext } from "./context.js";
import { type ChoiceRequest, type ChoiceSource, GenerationJob } from "./generation.js";
import { setRequestLog } from "./request-log.js";
import { paramsForChoice } from "./request-params.js";
import { onClientGone } from "./sse.js";

/** What to run: sampled choices, or one beam search per prompt. */
export type ChoicePlan =
  | { requests: ChoiceRequest[] }
  | { beamSearch: { prompts: BeamSearchPrompt[]; params: Omit<BeamSearchParams, "maxTokens"> } };

export interface StartedChoices {
  job: ChoiceSource;
  /** Stops watching for the client's disconnect (call once the response is complete). */
  stopWatching: () => void;
}

export function startChoices(
  ctx: ServerContext,
  request: FastifyRequest,
  reply: FastifyReply,
  id: string,
  plan: ChoicePlan,
): StartedChoices {
  // fastify starts the reply's clock when the request is routed, before its body is read.
  const arrivedAt = performance.now() - reply.elapsedTime;
  const job: ChoiceSource =
    "requests" in plan
      ? new GenerationJob(ctx.engine, id, plan.requests, ctx.metrics, arrivedAt)
      : new BeamSearchJob(ctx, plan.beamSearch.prompts, plan.beamSearch.params, arrivedAt);
  // OpenAI's end-user ids for abuse monitoring (`user`, and its newer `safety_identifier`) go to the request's
  // log line.
  const body = request.body as { user?: unknown; safety_identifier?: unknown } | null;
  const logUser = {
    ...(typeof body?.user === "string" ? { user: body.user } : {}),
    ...(typeof body?.safety_identifier === "string" ? { safetyIdentifier: body.safety_identifier } : {}),
  };
  setRequestLog(request, () => ({ requestId: id, ...logUser, ...job.logFields() }));
  const stopWatching = onClientGone(reply, () => job.abort());
  return { job, stopWatching };
}

/** n choices of one prompt, each with its own derived seed (paramsForChoice). */
export function choicesOfOnePrompt(
  promptTokenIds: number[],
  params: SamplingParams,
  n: number,
): ChoiceRequest[] {
  return Array.from({ length: n }, (_, i) => ({
    promptTokenIds,
    params: paramsForChoice(params, i, n),
    promptIndex: 0,
  }));
}
