/**
 * One JSON log line per request (pino), written when the response is over (sent, streamed or cut off):
 * method, path, status, duration, and for generation requests the ids, token counts and latencies.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";

const extraFields = new WeakMap<FastifyRequest, () => Record<string, unknown>>();

/** Adds fields to the request's log line; read when the line is written, so counts are final. */
export function setRequestLog(request: FastifyRequest, fields: () => Record<string, unknown>): void {
  extraFields.set(request, fields);
}

export function installRequestLog(app: FastifyInstance): void {
  app.addHook("onRequest", async (request, reply) => {
    const startedAt = performance.now();
    // Deferred a tick: a client that left has its request aborted by another close listener first.
    reply.raw.once("close", () =>
      setImmediate(() => {
        const res = reply.raw;
        request.log.info(
          {
            method: request.method,
            url: request.url,
            status: res.statusCode,
            durationMs: Math.round(performance.now() - startedAt),
            ...(res.writableFinished ? {} : { clientGone: true }),
            ...extraFields.get(request)?.(),
          },
          "request",
        );
      }),
    );
  });
}
