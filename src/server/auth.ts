/**
 * Bearer-token auth (vLLM's --api-key): required on /v1/*, /tokenize, /detokenize and /generate when any
 * key is configured; /health, /metrics, /version and the chat page stay open.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { ApiError, sendApiError } from "./errors.js";

export function isProtectedPath(path: string): boolean {
  return path.startsWith("/v1/") || path === "/tokenize" || path === "/detokenize" || path === "/generate";
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** Compares digests so the time taken says nothing about how much of a key matched. */
export function keyMatches(token: string, keys: readonly Buffer[]): boolean {
  const candidate = digest(token);
  let found = false;
  for (const key of keys) found = timingSafeEqual(candidate, key) || found;
  return found;
}

export function installAuth(app: FastifyInstance, apiKeys: readonly string[]): void {
  const keys = apiKeys.filter((k) => k.length > 0).map(digest);
  if (keys.length === 0) return;
  app.addHook("onRequest", async (request, reply) => {
    const path = request.url.split("?")[0]!;
    if (!isProtectedPath(path)) return;
    const header = request.headers.authorization;
    const match = typeof header === "string" ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
    if (!match) {
      return sendApiError(
        reply,
        new ApiError(
          401,
          "Missing API key: send it as 'Authorization: Bearer <key>'",
          "authorization",
          "invalid_request_error",
          "missing_api_key",
        ),
      );
    }
    if (!keyMatches(match[1]!.trim(), keys)) {
      return sendApiError(
        reply,
        new ApiError(
          401,
          "Incorrect API key provided",
          "authorization",
          "invalid_request_error",
          "invalid_api_key",
        ),
      );
    }
  });
}
