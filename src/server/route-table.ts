/**
 * Every registered route's method and pattern, recorded as routes are added, so a request that matched
 * nothing can be told apart: a known path with the wrong method (405 with an Allow header) from an unknown
 * path (404). Paths are compared decoded, as the router compares them.
 */
import type { FastifyInstance } from "fastify";

interface RouteEntry {
  pattern: RegExp;
  methods: Set<string>;
}

export class RouteTable {
  private readonly routes = new Map<string, RouteEntry>();

  /** Starts recording; call before any route is registered. */
  static install(app: FastifyInstance): RouteTable {
    const table = new RouteTable();
    app.addHook("onRoute", (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      table.add(route.url ?? route.path, methods);
    });
    return table;
  }

  add(url: string, methods: readonly string[]): void {
    let entry = this.routes.get(url);
    if (!entry) {
      entry = { pattern: patternOf(url), methods: new Set() };
      this.routes.set(url, entry);
    }
    for (const m of methods) entry.methods.add(m.toUpperCase());
  }

  /** The methods some route answers on this path (empty when no route has the path). */
  methodsFor(rawUrl: string): string[] {
    const path = decodePath(rawUrl);
    if (path === null) return [];
    const found = new Set<string>();
    for (const entry of this.routes.values()) {
      if (entry.pattern.test(path)) for (const m of entry.methods) found.add(m);
    }
    return [...found].sort();
  }

  /** Registered patterns, for tests that walk every route. */
  patterns(): Array<{ url: string; methods: string[] }> {
    return [...this.routes].map(([url, e]) => ({ url, methods: [...e.methods].sort() }));
  }
}

/** `/v1/models/*` and `/assets/:name` -> an anchored regex over a decoded path. */
function patternOf(url: string): RegExp {
  const source = url
    .split(/(\*|:[A-Za-z_][A-Za-z0-9_]*)/)
    .map((part) =>
      part === "*" ? ".*" : part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("");
  return new RegExp(`^${source}$`);
}

/** The path part of a request target (origin or absolute form), percent-decoded; null if undecodable. */
export function decodePath(rawUrl: string): string | null {
  let path = rawUrl;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path);
  if (scheme) path = path.slice(scheme[0].length) || "/";
  path = path.split(/[?#]/)[0]!;
  try {
    return decodeURIComponent(path);
  } catch {
    return null;
  }
}
