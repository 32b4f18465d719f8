/**
 * Serves the chat page: `/` (HTML) and `/assets/*` (the stylesheet and the page's compiled modules, read
 * from beside this file, so it works from dist/ and from an installed package). Plugged into the server
 * through ServerOptions.registerWebRoutes; the page itself talks to /v1/* like any client.
 */
import { readFileSync } from "node:fs";
import type { FastifyInstance, FastifyReply } from "fastify";
import { ApiError } from "../errors.js";
import { CHAT_PAGE_HTML } from "./page.js";
import { CHAT_PAGE_CSS } from "./style.js";

/** The browser modules, compiled by tsc next to this file. Only these names are served. */
export const PAGE_MODULES = [
  "app.js",
  "chat-client.js",
  "markdown.js",
  "markdown-parse.js",
  "sse-parse.js",
] as const;

/**
 * Only our own origin may provide scripts, styles, fetches and images, so even a rendering bug could not
 * run injected script or make the page talk to another host.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const COMMON_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

/** Reads the compiled modules once; a missing one means an incomplete build, named with its path. */
function loadModules(): Map<string, string> {
  const modules = new Map<string, string>();
  for (const name of PAGE_MODULES) {
    const url = new URL(`./${name}`, import.meta.url);
    let source: string;
    try {
      source = readFileSync(url, "utf8");
    } catch (err) {
      throw new Error(
        `The chat page module ${url.pathname} is missing (${(err as NodeJS.ErrnoException).code ?? String(err)}); ` +
          "build the project with `npm run build`",
      );
    }
    // The source maps point into src/, which is not served: drop the reference instead of a 404.
    modules.set(name, source.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n"));
  }
  return modules;
}

function send(reply: FastifyReply, contentType: string, body: string): FastifyReply {
  return reply.headers(COMMON_HEADERS).type(contentType).send(body);
}

/** Adds GET `/` and `/assets/*`. The second argument (the server context) is accepted and not needed. */
export function registerWebRoutes(app: FastifyInstance, _ctx?: unknown): void {
  const modules = loadModules();
  const page = (_request: unknown, reply: FastifyReply) =>
    send(reply, "text/html; charset=utf-8", CHAT_PAGE_HTML);
  app.get("/", page);
  app.get("/index.html", page);
  app.get("/assets/style.css", (_request, reply) => send(reply, "text/css; charset=utf-8", CHAT_PAGE_CSS));
  app.get<{ Params: { name: string } }>("/assets/:name", (request, reply) => {
    const source = modules.get(request.params.name);
    if (source === undefined) {
      throw new ApiError(
        404,
        `No chat page asset named '${request.params.name}'`,
        null,
        "not_found_error",
        "not_found",
      );
    }
    return send(reply, "text/javascript; charset=utf-8", source);
  });
}
