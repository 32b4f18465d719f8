/**
 * vLLM's simple `POST /generate` (the seed model card's example): `{prompt, stream?, ...sampling}` ->
 * `{text: [prompt + completion, one per n]}`; streamed as NUL-separated JSON objects of the texts so far.
 * Unlike vLLM it takes JSON bodies only (a form or text/plain body is a 415): a route that accepted any
 * Content-Type could be driven by any web page through a "simple" request that skips the CORS preflight.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { admit, checkModel, type ServerContext } from "../context.js";
import { badRequest, engineFailure, toApiError } from "../errors.js";
import { encodeText } from "../prompt-encoding.js";
import { checkSampling, fitMaxTokens, refuseUnknownFields, samplingFromBody } from "../request-params.js";
import { GenerateBody } from "../schemas.js";
import { SseWriter } from "../sse.js";
import { choicesOfOnePrompt, startChoices } from "../start-job.js";
import { applyStructuredParams } from "../structured-params.js";
import { validateBody } from "../validate.js";

/** vLLM SamplingParams' default. */
const DEFAULT_MAX_TOKENS = 16;

export async function registerGenerate(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  await app.register(async (scope) => {
    scope.post("/generate", async (request, reply) => {
      const body = validateBody(GenerateBody, request.body);
      // vLLM builds SamplingParams(**body), which fails on a field it does not have: so does this route.
      refuseUnknownFields(request.body, GenerateBody, "/generate");
      checkModel(ctx, body.model);
      // The answer is texts only: fields that would change nothing in it are refused by name.
      if (body.logprobs != null) {
        throw badRequest("/generate answers texts only; ask /v1/completions for logprobs", "logprobs");
      }
      if (body.stream_options != null) {
        throw badRequest(
          "stream_options is not supported on /generate (its stream has no usage)",
          "stream_options",
        );
      }
      const n = body.n ?? 1;
      const promptTokenIds = await encodeText(ctx, body.prompt, "prompt", { addBos: true });
      const params = samplingFromBody(body);
      const remaining = ctx.maxModelLen - promptTokenIds.length;
      const requested = body.max_tokens ?? Math.min(DEFAULT_MAX_TOKENS, Math.max(remaining, 1));
      params.maxTokens = fitMaxTokens(ctx, promptTokenIds.length, requested, "prompt", "max_tokens");
      await applyStructuredParams(ctx, body, params);
      checkSampling(ctx, params);
      admit(ctx, n);

      const id = `generate-${randomUUID().replaceAll("-", "")}`;
      const { job, stopWatching } = startChoices(ctx, request, reply, id, {
        requests: choicesOfOnePrompt(promptTokenIds, params, n),
      });
      const texts = Array.from({ length: n }, () => body.prompt);
      try {
        if (body.stream) {
          // NUL-separated JSON objects through the SSE writer (its back-pressure and disconnect handling).
          const out = SseWriter.start(reply, { "content-type": "application/json" });
          try {
            for await (const { index, output } of job.events()) {
              if (!out.open) break;
              if (output.finishReason === "error") throw engineFailure(output);
              texts[index] += output.textDelta;
              await out.write(`${JSON.stringify({ text: texts })}\0`);
            }
          } catch (err) {
            // Headers are gone: say what failed in-band, as the stream's last object.
            await out.write(`${JSON.stringify({ error: toApiError(err).message })}\0`);
          } finally {
            out.end();
          }
          return reply;
        }
        for await (const { index, output } of job.events()) {
          if (output.finishReason === "error") throw engineFailure(output);
          texts[index] += output.textDelta;
        }
        return { text: texts };
      } finally {
        stopWatching();
      }
    });
  });
}
