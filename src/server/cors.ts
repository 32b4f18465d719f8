/**
 * CORS, as vLLM does it (`--allowed-origins`, default every origin): browser chat front ends on another
 * origin (BetterGPT, a local web UI) can call the API. Preflight requests are answered here, before auth,
 * because browsers never send the Authorization header on a preflight.
 */
import type { FastifyInstance } from "fastify";

export function installCors(app: FastifyInstance, allowedOrigins: readonly string[]): void {
  if (allowedOrigins.length === 0) return;
  const anyOrigin = allowedOrigins.includes("*");
  app.addHook("onRequest", async (request, reply) => {
    const origin = request.headers.origin;
    if (typeof origin !== "string") return;
    if (!anyOrigin && !allowedOrigins.includes(origin)) return;
    reply.header("access-control-allow-origin", anyOrigin ? "*" : origin);
    if (!anyOrigin) reply.header("vary", "Origin");
    const preflightMethod = request.headers["access-control-request-method"];
    if (request.method === "OPTIONS" && typeof preflightMethod === "string") {
      const requestedHeaders = request.headers["access-control-request-headers"];
      reply.header("access-control-allow-methods", "GET, POST, OPTIONS");
      reply.header(
        "access-control-allow-headers",
        typeof requestedHeaders === "string" ? requestedHeaders : "authorization, content-type",
      );
      reply.header("access-control-max-age", "600");
      return reply.code(204).send();
    }
  });
}
