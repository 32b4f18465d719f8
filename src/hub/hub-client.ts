/**
 * The hub's HTTP protocol, as huggingface_hub speaks it:
 *   GET  {endpoint}/api/models/{repo}/revision/{revision}  -> { sha, siblings: [{ rfilename }] }
 *   HEAD {endpoint}/{repo}/resolve/{revision}/{file}       -> X-Repo-Commit, ETag / X-Linked-Etag, X-Linked-Size,
 *                                                             and for LFS files a redirect to the CDN
 *   GET  that location (with Range to resume)
 * The token goes only to the hub's own origin, never to the CDN it redirects to.
 */
import { normalizeEtag } from "./cache-layout.js";
import { HubError, type HubRefusal, httpStatusError, networkErrorCode } from "./errors.js";

export interface RepoInfo {
  /** Commit the revision points to. */
  sha: string;
  /** Every file path in the repo at that commit. */
  files: string[];
}

export interface FileMetadata {
  /** Commit the file was resolved at (X-Repo-Commit). */
  commit: string;
  /** sha256 for LFS files (X-Linked-Etag), git blob sha1 for the rest (ETag); the blob's name in the cache. */
  etag: string;
  /** Size in bytes (X-Linked-Size for LFS files, else Content-Length). */
  size: number;
  /** Where the bytes are: the CDN URL for LFS files, else the resolve URL. */
  location: string;
}

/** A network failure (no answer from the hub), kept apart so callers can add what the cache holds. */
export class HubNetworkError extends HubError {
  constructor(
    readonly code: string,
    readonly url: string,
  ) {
    super(`cannot reach ${new URL(url).origin} (${code})`);
  }
}

const MAX_REDIRECTS = 10;
const METADATA_TIMEOUT_MS = 30_000;

function encodePath(file: string): string {
  return file.split("/").map(encodeURIComponent).join("/");
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400 && status !== 304;
}

export class HubClient {
  private readonly hubOrigin: string;

  constructor(
    readonly endpoint: string,
    private readonly token?: string,
  ) {
    this.hubOrigin = new URL(endpoint).origin;
  }

  get hasToken(): boolean {
    return this.token !== undefined;
  }

  resolveUrl(repoId: string, revision: string, file: string): string {
    return `${this.endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${encodePath(file)}`;
  }

  async repoInfo(repoId: string, revision: string): Promise<RepoInfo> {
    const url = `${this.endpoint}/api/models/${repoId}/revision/${encodeURIComponent(revision)}`;
    const response = await this.request(url, "GET", { followCrossOrigin: true });
    if (!response.ok) {
      throw httpStatusError(refusalOf(response), { repoId, revision, url, hasToken: this.hasToken });
    }
    const body = (await response.json()) as { sha?: unknown; siblings?: { rfilename?: unknown }[] };
    if (typeof body.sha !== "string" || !Array.isArray(body.siblings)) {
      throw new HubError(
        `${url} answered without "sha" and "siblings": is HF_ENDPOINT (${this.endpoint}) a hub?`,
      );
    }
    const files = body.siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === "string");
    return { sha: body.sha, files };
  }

  /** HEAD on the resolve URL: follows same-origin redirects (renamed repos) but stops at the CDN one. */
  async fileMetadata(repoId: string, revision: string, file: string): Promise<FileMetadata> {
    const url = this.resolveUrl(repoId, revision, file);
    const response = await this.request(url, "HEAD", { followCrossOrigin: false });
    if (!response.ok && !isRedirect(response.status)) {
      throw httpStatusError(refusalOf(response), { repoId, revision, file, url, hasToken: this.hasToken });
    }
    const headers = response.headers;
    const commit = headers.get("x-repo-commit") ?? undefined;
    const etag = normalizeEtag(headers.get("x-linked-etag") ?? headers.get("etag"));
    const size = Number(headers.get("x-linked-size") ?? headers.get("content-length"));
    if (!commit || !etag || !Number.isSafeInteger(size) || size < 0) {
      throw new HubError(
        `${response.url || url} lacks X-Repo-Commit, ETag or a size: HF_ENDPOINT (${this.endpoint}) does not speak the hub's file protocol`,
      );
    }
    const redirect = isRedirect(response.status) ? headers.get("location") : null;
    const location = redirect ? new URL(redirect, response.url || url).href : response.url || url;
    return { commit, etag, size, location };
  }

  /** GET the file bytes from `startByte` on; the caller checks for 206 (resumed) versus 200 (whole file). */
  async download(location: string, startByte: number, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = startByte > 0 ? { range: `bytes=${startByte}-` } : {};
    return this.request(location, "GET", { followCrossOrigin: true, headers, timeoutMs: 0, signal });
  }

  /** fetch with redirects followed by hand, so the Authorization header never leaves the hub's origin. */
  private async request(
    url: string,
    method: "GET" | "HEAD",
    opts: {
      followCrossOrigin: boolean;
      headers?: Record<string, string>;
      timeoutMs?: number;
      signal?: AbortSignal;
    },
  ): Promise<Response> {
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers: Record<string, string> = {
        "accept-encoding": "identity", // sizes and Range offsets refer to the stored bytes
        "user-agent": "awq-ts",
        ...opts.headers,
      };
      if (this.token && new URL(current).origin === this.hubOrigin)
        headers.authorization = `Bearer ${this.token}`;
      const timeoutMs = opts.timeoutMs ?? METADATA_TIMEOUT_MS;
      const signals = [opts.signal, timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined];
      const present = signals.filter((s): s is AbortSignal => s !== undefined);
      let response: Response;
      try {
        response = await fetch(current, {
          method,
          headers,
          redirect: "manual",
          signal: present.length > 0 ? AbortSignal.any(present) : undefined,
        });
      } catch (err) {
        const code =
          networkErrorCode(err) ?? ((err as Error).name === "TimeoutError" ? "ETIMEDOUT" : undefined);
        if (code) throw new HubNetworkError(code, current);
        if ((err as Error).name === "AbortError") throw err;
        const cause = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : "";
        throw new HubError(
          `request to ${current} failed: ${cause || (err as Error).message} (is HF_ENDPOINT right?)`,
        );
      }
      const location = response.headers.get("location");
      if (!isRedirect(response.status) || !location) return withUrl(response, current);
      const next = new URL(location, current);
      if (!opts.followCrossOrigin && next.origin !== new URL(current).origin)
        return withUrl(response, current);
      await response.body?.cancel();
      current = next.href;
    }
    throw new HubError(`more than ${MAX_REDIRECTS} redirects from ${url}`);
  }
}

function refusalOf(response: Response): HubRefusal {
  return {
    status: response.status,
    errorCode: response.headers.get("x-error-code") ?? undefined,
    errorMessage: response.headers.get("x-error-message") ?? undefined,
  };
}

/** fetch leaves `url` empty on manual redirects' responses; keep the URL we asked for. */
function withUrl(response: Response, url: string): Response {
  if (!response.url) Object.defineProperty(response, "url", { value: url });
  return response;
}
