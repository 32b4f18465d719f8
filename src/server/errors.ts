/**
 * OpenAI's error body `{ error: { message, type, param, code } }` and the HTTP errors the server raises.
 * Every error a client can fix names the field (`param`) and what was expected.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import { EngineClosedError } from "../engine/engine.js";
import { InvalidParamError } from "../engine/sampling-params.js";

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An error that becomes one HTTP response with an OpenAI error body. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly statusCode: number,
    message: string,
    readonly param: string | null = null,
    readonly type: string = errorTypeFor(statusCode),
    readonly code: string | null = null,
    /** Extra headers (Retry-After on 429/503). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function errorTypeFor(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export function badRequest(message: string, param: string | null): ApiError {
  return new ApiError(400, message, param, "invalid_request_error", "invalid_value");
}

export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
  return reply.code(err.statusCode).type("application/json").send(err.body());
}

/** Maps fastify's own errors (body parsing, content type, size) to OpenAI error bodies. */
function fromFastifyError(err: FastifyError): ApiError {
  switch (err.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new ApiError(
        415,
        `Unsupported Content-Type: send the body as JSON with "Content-Type: application/json" (${err.message})`,
        "content-type",
        "invalid_request_error",
        "unsupported_media_type",
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ApiError(
        400,
        "The request body is empty; expected a JSON object",
        "body",
        undefined,
        "invalid_json",
      );
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new ApiError(
        413,
        `The request body is too large (${err.message})`,
        "body",
        undefined,
        "body_too_large",
      );
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new ApiError(
        400,
        `The request body is not valid JSON: ${err.message}`,
        "body",
        undefined,
        "invalid_json",
      );
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message))) {
    return new ApiError(
      400,
      `The request body is not valid JSON: ${err.message}`,
      "body",
      undefined,
      "invalid_json",
    );
  }
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
  return new ApiError(status, status === 500 ? `Internal server error: ${err.message}` : err.message, null);
}

/** Any error -> the ApiError it becomes (the engine's refusals keep their meaning). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof InvalidParamError) return badRequest(err.message, err.param);
  if (err instanceof EngineClosedError) {
    return new ApiError(503, err.message, null, "server_error", "shutting_down", { "retry-after": "1" });
  }
  if (err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("FST_")) {
    return fromFastifyError(err as FastifyError);
  }
  if (err instanceof SyntaxError) return fromFastifyError(err as FastifyError);
  return new ApiError(
    500,
    `Internal server error: ${err instanceof Error ? err.message : String(err)}`,
    null,
  );
}

/** Installs the error and not-found handlers so every error leaves as an OpenAI error body. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request, reply) => {
    const apiError = toApiError(err);
    if (apiError.statusCode >= 500) request.log.error({ err }, "request failed");
    if (reply.sent || reply.raw.headersSent) return;
    sendApiError(reply, apiError);
  });
  app.setNotFoundHandler((request, reply) => {
    sendApiError(
      reply,
      new ApiError(
        404,
        `No route ${request.method} ${request.url.split("?")[0]}`,
        null,
        "not_found_error",
        "not_found",
      ),
    );
  });
}
