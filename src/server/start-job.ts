/**
 * Starts the engine requests of one HTTP request: the GenerationJob (metrics observed per finished choice), its
 * per-request log line, and the abort when the client goes away. Shared by every generating route.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { SamplingParams } from "../engine/types.js";
import type { ServerContext } from "./context.js";
import { type ChoiceRequest, GenerationJob } from "./generation.js";
import { setRequestLog } from "./request-log.js";
import { paramsForChoice } from "./request-params.js";
import { onClientGone } from "./sse.js";

export interface StartedJob {
  job: GenerationJob;
  /** Stops watching for the client's disconnect (call once the response is complete). */
  stopWatching: () => void;
}

export function startJob(
  ctx: ServerContext,
  request: FastifyRequest,
  reply: FastifyReply,
  id: string,
  requests: ChoiceRequest[],
): StartedJob {
  const job = new GenerationJob(ctx.engine, id, requests, (sample) => ctx.metrics.observe(sample));
  setRequestLog(request, () => ({ requestId: id, ...job.logFields() }));
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
