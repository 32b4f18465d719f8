/**
 * DNS-rebinding guard. A page on `evil.example` whose name is re-pointed at 127.0.0.1 talks to a local server
 * as a "same-origin" page, past CORS; what gives it away is the Host header, which still names the attacker's
 * host. So while the server listens on a loopback address, requests must name this server (a loopback name,
 * or the `--host` itself) or a host listed in `--allowed-hosts`; others get 403. Listening on a public
 * address (`--host 0.0.0.0`, a LAN address) turns the guard off, as does `--allowed-hosts '*'`.
 */
import type { FastifyInstance } from "fastify";
import { ApiError, sendApiError } from "./errors.js";

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase();
  return LOOPBACK_NAMES.has(name) || name.endsWith(".localhost") || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** The host name of a Host header, without the port (`[::1]:8000` -> `[::1]`, `a.b:80` -> `a.b`). */
export function hostName(header: string): string {
  const value = header.trim().toLowerCase();
  if (value.startsWith("[")) return value.slice(0, value.indexOf("]") + 1);
  const colon = value.lastIndexOf(":");
  return colon >= 0 ? value.slice(0, colon) : value;
}

/** Whether the guard applies, and which Host names it lets through. */
export function hostPolicy(
  listenHost: string,
  allowedHosts: readonly string[],
): ((host: string) => boolean) | null {
  if (allowedHosts.includes("*") || !isLoopbackHost(listenHost)) return null;
  const extra = new Set([listenHost.toLowerCase(), ...allowedHosts.map((h) => h.toLowerCase())]);
  return (header) => {
    const name = hostName(header);
    return isLoopbackHost(name) || extra.has(name);
  };
}

export function installHostGuard(
  app: FastifyInstance,
  listenHost: string,
  allowedHosts: readonly string[],
): void {
  const allowed = hostPolicy(listenHost, allowedHosts);
  if (allowed === null) return;
  app.addHook("onRequest", async (request, reply) => {
    const host = request.headers.host;
    if (typeof host === "string" && allowed(host)) return;
    return sendApiError(
      reply,
      new ApiError(
        403,
        `The Host header ${JSON.stringify(host ?? "")} does not name this server; start it with --allowed-hosts NAME ` +
          "to serve that name (this guards a local server against DNS rebinding)",
        "host",
        "invalid_request_error",
        "host_not_allowed",
      ),
    );
  });
}
