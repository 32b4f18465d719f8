/**
 * Bearer-token auth (vLLM's --api-key, or --api-key-file). Every route needs the key except an allowlist of
 * open ones (/health, /version, /metrics and the chat page). The decision is made on the route the router
 * matched, never on the raw URL: `/%761/models`, `/generat%65` and `http://host/v1/models` (absolute form)
 * all reach the same handlers as their plain spellings, so they must meet the same check. A request that
 * matches no route also needs the key (it gets 401 before 404), so nothing is open by accident.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { ApiError, sendApiError } from "./errors.js";

/** Route patterns (as registered) that answer without a key. */
export const OPEN_ROUTES: ReadonlySet<string> = new Set([
  "/health",
  "/version",
  "/metrics",
  "/",
  "/index.html",
  "/assets/style.css",
  "/assets/:name",
]);

/** Whether a request matched to `routeUrl` (undefined: no route matched) must carry a key. */
export function routeNeedsKey(routeUrl: string | undefined): boolean {
  return routeUrl === undefined || !OPEN_ROUTES.has(routeUrl);
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

/**
 * Keys from a file (llama.cpp's --api-key-file): one per line, blank lines and `#` comments skipped, so keys
 * stay out of `ps`. A missing or keyless file is an error naming it: starting open by mistake is worse.
 */
export function readApiKeyFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`--api-key-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  const keys = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  if (keys.length === 0) throw new Error(`--api-key-file ${file}: holds no key (one per line)`);
  return keys;
}

export function installAuth(app: FastifyInstance, apiKeys: readonly string[]): void {
  const keys = apiKeys.filter((k) => k.length > 0).map(digest);
  if (keys.length === 0) return;
  app.addHook("onRequest", async (request, reply) => {
    if (!routeNeedsKey(request.routeOptions.url)) return;
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
