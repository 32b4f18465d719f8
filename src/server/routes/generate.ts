/**
 * vLLM's simple `POST /generate` (the seed model card's example): `{prompt, stream?, ...sampling}` ->
 * `{text: [prompt + completion, one per n]}`; streamed as NUL-separated JSON objects of the texts so far.
 * Unlike vLLM it takes JSON bodies only (a form or text/plain body is a 415): a route that accepted any
 * Content-Type could be driven by any web page through a "simple" request that skips the CORS preflight.
 */
import { randomUUID } from "node:crypto";
import type { OutgoingHttpHeaders } from "node:http";
import type { FastifyInstance } from "fastify";
import { admit, type ServerContext } from "../context.js";
import { ApiError } from "../errors.js";
import { encodeText } from "../prompt-encoding.js";
import { checkSampling, fitMaxTokens, samplingFromBody } from "../request-params.js";
import { GenerateBody } from "../schemas.js";
import { choicesOfOnePrompt, startJob } from "../start-job.js";
import { applyStructuredParams } from "../structured-params.js";
import { validateBody } from "../validate.js";

/** vLLM SamplingParams' default. */
const DEFAULT_MAX_TOKENS = 16;

export async function registerGenerate(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  await app.register(async (scope) => {
    scope.post("/generate", async (request, reply) => {
      const body = validateBody(GenerateBody, request.body);
      const n = body.n ?? 1;
      const promptTokenIds = await encodeText(ctx, body.prompt, "prompt", { addBos: true });
      const params = samplingFromBody(body);
      const remaining = ctx.maxModelLen - promptTokenIds.length;
      const requested = body.max_tokens ?? Math.min(DEFAULT_MAX_TOKENS, Math.max(remaining, 1));
      params.maxTokens = fitMaxTokens(ctx, promptTokenIds.length, requested, "prompt", "max_tokens");
      if (body.logprobs != null) params.logprobs = body.logprobs;
      await applyStructuredParams(ctx, body, params);
      checkSampling(ctx, params);
      admit(ctx, n);

      const id = `generate-${randomUUID().replaceAll("-", "")}`;
      const { job, stopWatching } = startJob(
        ctx,
        request,
        reply,
        id,
        choicesOfOnePrompt(promptTokenIds, params, n),
      );
      const texts = Array.from({ length: n }, () => body.prompt);
      try {
        if (body.stream) {
          // Headers hooks set (CORS) would be lost with the hijack: carry them over.
          const hookHeaders = reply.getHeaders() as OutgoingHttpHeaders;
          reply.hijack();
          const res = reply.raw;
          res.writeHead(200, { ...hookHeaders, "content-type": "application/json" });
          try {
            for await (const { index, output } of job.events()) {
              if (res.destroyed) break;
              if (output.finishReason === "error") throw new Error(output.error ?? "unknown engine error");
              texts[index] += output.textDelta;
              res.write(`${JSON.stringify({ text: texts })}\0`);
            }
          } catch (err) {
            // Headers are gone: say what failed in-band, as the stream's last object.
            res.write(`${JSON.stringify({ error: `Generation failed: ${(err as Error).message}` })}\0`);
          } finally {
            res.end();
          }
          return reply;
        }
        for await (const { index, output } of job.events()) {
          if (output.finishReason === "error") {
            throw new ApiError(500, `Generation failed: ${output.error ?? "unknown engine error"}`, null);
          }
          texts[index] += output.textDelta;
        }
        return { text: texts };
      } finally {
        stopWatching();
      }
    });
  });
}
