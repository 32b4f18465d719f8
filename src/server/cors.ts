/**
 * CORS, closed by default as Ollama does it: only the server's own origin and loopback origins
 * (`http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`) get CORS headers, so a web page the user
 * happens to open cannot drive a local server that has no key. `--allowed-origins '*'` opens it to every
 * origin (vLLM's and llama.cpp's default); `--allowed-origins URL` adds origins. Preflight requests are
 * answered here, before auth, because browsers never send the Authorization header on a preflight.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";

const LOOPBACK_ORIGIN = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/i;

/** Whether `origin` may call the API given the configured list (see the header comment). */
export function originAllowed(
  origin: string,
  allowedOrigins: readonly string[],
  request?: FastifyRequest,
): boolean {
  if (allowedOrigins.includes("*")) return true;
  if (allowedOrigins.includes(origin)) return true;
  if (LOOPBACK_ORIGIN.test(origin)) return true;
  // The server's own origin, as the browser saw it in the address bar.
  const host = request?.headers.host;
  return typeof host === "string" && (origin === `http://${host}` || origin === `https://${host}`);
}

export function installCors(app: FastifyInstance, allowedOrigins: readonly string[]): void {
  const anyOrigin = allowedOrigins.includes("*");
  app.addHook("onRequest", async (request, reply) => {
    const origin = request.headers.origin;
    if (typeof origin !== "string") return;
    if (!originAllowed(origin, allowedOrigins, request)) return;
    reply.header("access-control-allow-origin", anyOrigin ? "*" : origin);
    if (!anyOrigin) reply.header("vary", "Origin");
    reply.header("access-control-expose-headers", "x-request-id, retry-after");
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
