/**
 * OpenAI's error body `{ error: { message, type, param, code } }` and the HTTP errors the server raises.
 * Every error a client can fix names the field (`param`) and what was expected.
 */
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { EngineClosedError } from "../engine/engine.js";
import { InvalidParamError } from "../engine/sampling-params.js";
import type { RouteTable } from "./route-table.js";

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

/** The 500 of an engine request that ended with finishReason "error" (its `error` says what failed). */
export function engineFailure(output: { error?: string }): ApiError {
  return new ApiError(
    500,
    `Generation failed: ${output.error ?? "unknown engine error"}`,
    null,
    "server_error",
  );
}

export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
  return reply.code(err.statusCode).type("application/json").send(err.body());
}

/** The 400 for a body that does not parse as JSON (fastify's own code or a parser's SyntaxError). */
function invalidJson(err: Error): ApiError {
  return new ApiError(
    400,
    `The request body is not valid JSON: ${err.message}`,
    "body",
    undefined,
    "invalid_json",
  );
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
        `The request body is larger than this server accepts (--max-request-body-bytes; ${err.message})`,
        "body",
        undefined,
        "body_too_large",
      );
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return invalidJson(err);
  }
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message)))
    return invalidJson(err);
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

/**
 * Installs the error and not-found handlers so every error leaves as an OpenAI error body: a handler's
 * throw, fastify's own errors, an unknown route (404) and a known route with the wrong method (405).
 */
export function installErrorHandlers(app: FastifyInstance, routes: RouteTable): void {
  app.setErrorHandler((err: unknown, request, reply) => {
    const apiError = toApiError(err);
    if (apiError.statusCode >= 500) request.log.error({ err }, "request failed");
    if (reply.sent || reply.raw.headersSent) return;
    sendApiError(reply, apiError);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0];
    const allowed = routes.methodsFor(request.url);
    if (allowed.length > 0) {
      reply.header("allow", allowed.join(", "));
      return sendApiError(
        reply,
        new ApiError(
          405,
          `Method ${request.method} is not allowed on ${path}; use ${allowed.join(" or ")}`,
          null,
          "invalid_request_error",
          "method_not_allowed",
        ),
      );
    }
    sendApiError(
      reply,
      new ApiError(404, `No route ${request.method} ${path}`, null, "not_found_error", "not_found"),
    );
  });
}

/**
 * fastify's `frameworkErrors` option: a URL the router cannot decode (`/v1/chat/completions%`) or a path
 * parameter over the router's length limit gets an OpenAI body, not fastify's own.
 */
export function frameworkErrorHandler(
  err: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (err.code === "FST_ERR_MAX_PARAM_LENGTH") {
    sendApiError(
      reply,
      new ApiError(
        414,
        "The request URL has a path segment that is too long",
        "url",
        undefined,
        "uri_too_long",
      ),
    );
    return;
  }
  if (err.code === "FST_ERR_BAD_URL") {
    sendApiError(
      reply,
      new ApiError(400, `The request URL is malformed: ${err.message}`, "url", undefined, "bad_url"),
    );
    return;
  }
  sendApiError(reply, toApiError(err));
}

/** What a connection-level failure gets before the socket closes (fastify's `clientErrorHandler`). */
export function clientErrorResponse(err: NodeJS.ErrnoException): { status: number; body: OpenAiErrorBody } {
  const [status, message, code] =
    err.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "The request was not received in time (--request-timeout)", "request_timeout"]
      : err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "The request headers are too large", "headers_too_large"]
        : [400, `The request is not valid HTTP (${err.code ?? "parse error"})`, "bad_request"];
  return { status, body: new ApiError(status, message, null, undefined, code).body() };
}

export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  if (socket.writable) {
    const { status, body } = clientErrorResponse(err);
    const text = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    );
  }
  socket.destroy();
}
