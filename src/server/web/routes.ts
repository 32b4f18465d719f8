/**
 * Serves the chat page: `/` (HTML) and `/assets/*`: the stylesheet, the page's compiled modules (read from
 * beside this file, so it works from dist/ and from an installed package), and the libraries it uses, read
 * from node_modules (KaTeX with its fonts, highlight.js's browser build and two of its themes, idb), so the
 * page needs no internet. Plugged into the server through ServerOptions.registerWebRoutes; the page itself
 * talks to /v1/* like any client.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { FastifyInstance, FastifyReply } from "fastify";
import { ApiError } from "../errors.js";
import { CHAT_PAGE_HTML, IMPORT_MAP_JSON, PAGE_MODULES } from "./page.js";
import { CHAT_PAGE_CSS } from "./style.js";

export { PAGE_MODULES };

/**
 * Only our own origin may provide scripts, styles, fonts, fetches and images, so even a rendering bug could
 * not run injected script or make the page talk to another host. The one inline script is the import map,
 * allowed by its hash. KaTeX sets sizes through element.style (CSSOM), which style-src does not restrict.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src 'self' 'sha256-${createHash("sha256").update(IMPORT_MAP_JSON).digest("base64")}'`,
  "style-src 'self'",
  "font-src 'self'",
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

interface Asset {
  type: string;
  body: string | Buffer;
}

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";
const FONT_TYPES: Record<string, string> = {
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".ttf": "font/ttf",
};

/** Reads the compiled modules once; a missing one means an incomplete build, named with its path. */
function loadModules(assets: Map<string, Asset>): void {
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
    assets.set(name, { type: JS, body: source.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n") });
  }
}

/** The folder of an installed package, found the way Node looks for it (ignoring its "exports" map). */
function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  for (const dir of require.resolve.paths(name) ?? []) {
    const candidate = path.join(dir, name);
    if (existsSync(path.join(candidate, "package.json"))) return candidate;
  }
  throw new Error(`The chat page needs the npm package ${name}, which is not installed; run \`npm install\``);
}

function readPackageFile(pkg: string, file: string): Buffer {
  const full = path.join(packageDir(pkg), file);
  try {
    return readFileSync(full);
  } catch (err) {
    throw new Error(
      `The chat page needs ${full} (${(err as NodeJS.ErrnoException).code ?? String(err)}); reinstall ${pkg}`,
    );
  }
}

/**
 * The libraries, under flat names (the open route is /assets/:name): KaTeX's stylesheet is rewritten to
 * find its fonts at /assets/KaTeX_*.woff2; highlight.js's light and dark GitHub themes are joined under a
 * prefers-color-scheme query, as the page's own colours are.
 */
function loadLibraries(assets: Map<string, Asset>): void {
  assets.set("katex.mjs", { type: JS, body: readPackageFile("katex", "dist/katex.mjs") });
  const katexCss = readPackageFile("katex", "dist/katex.min.css").toString("utf8");
  assets.set("katex.min.css", { type: CSS, body: katexCss.replace(/url\(fonts\//g, "url(/assets/") });
  const fontDir = path.join(packageDir("katex"), "dist", "fonts");
  for (const file of readdirSync(fontDir)) {
    const type = FONT_TYPES[path.extname(file)];
    if (type && /^KaTeX_[\w-]+\.\w+$/.test(file))
      assets.set(file, { type, body: readFileSync(path.join(fontDir, file)) });
  }
  assets.set("highlight.min.js", {
    type: JS,
    body: readPackageFile("@highlightjs/cdn-assets", "es/highlight.min.js"),
  });
  const light = readPackageFile("@highlightjs/cdn-assets", "styles/github.min.css").toString("utf8");
  const dark = readPackageFile("@highlightjs/cdn-assets", "styles/github-dark.min.css").toString("utf8");
  assets.set("highlight.css", {
    type: CSS,
    body: `${light}\n@media (prefers-color-scheme: dark) {\n${dark}\n}\n`,
  });
  assets.set("idb.js", { type: JS, body: readPackageFile("idb", "build/index.js") });
}

function send(reply: FastifyReply, contentType: string, body: string | Buffer): FastifyReply {
  return reply.headers(COMMON_HEADERS).type(contentType).send(body);
}

/** Adds GET `/` and `/assets/*`. The second argument (the server context) is accepted and not needed. */
export function registerWebRoutes(app: FastifyInstance, _ctx?: unknown): void {
  const assets = new Map<string, Asset>();
  loadModules(assets);
  loadLibraries(assets);
  assets.set("style.css", { type: CSS, body: CHAT_PAGE_CSS });
  const page = (_request: unknown, reply: FastifyReply) =>
    send(reply, "text/html; charset=utf-8", CHAT_PAGE_HTML);
  app.get("/", page);
  app.get("/index.html", page);
  app.get("/assets/style.css", (_request, reply) => send(reply, CSS, CHAT_PAGE_CSS));
  app.get<{ Params: { name: string } }>("/assets/:name", (request, reply) => {
    const asset = assets.get(request.params.name);
    if (asset === undefined) {
      throw new ApiError(
        404,
        `No chat page asset named '${request.params.name}'`,
        null,
        "not_found_error",
        "not_found",
      );
    }
    return send(reply, asset.type, asset.body);
  });
}
