/** Hub failures, each phrased so the user knows what to do next. */

export class HubError extends Error {
  override name = "HubError";
}

/** The repo id is unknown to the hub (or private): the spec may have been meant as a local folder. */
export class RepoNotFoundError extends HubError {
  override name = "RepoNotFoundError";
}

const NETWORK_CODES = new Set([
  "ENOTFOUND",
  "EAI_AGAIN",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/** The system error code behind a failed fetch (undici wraps it in `cause`), if it is a network failure. */
export function networkErrorCode(err: unknown): string | undefined {
  for (let current: unknown = err; current instanceof Error; current = current.cause) {
    const code = (current as NodeJS.ErrnoException).code;
    if (code && NETWORK_CODES.has(code)) return code;
    if (current.cause === undefined && current.message === "terminated") return "ECONNRESET";
  }
  return undefined;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.round(bytes)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** What the hub said about a failed request (it names the cause in X-Error-Code / X-Error-Message). */
export interface HubRefusal {
  status: number;
  errorCode?: string;
  errorMessage?: string;
}

/** Turns an HTTP error from the hub into advice. */
export function httpStatusError(
  refusal: HubRefusal,
  what: { repoId: string; revision: string; file?: string; url: string; hasToken: boolean },
): HubError {
  const { status, errorCode } = refusal;
  const target = what.file
    ? `${what.file} in ${what.repoId}@${what.revision}`
    : `${what.repoId}@${what.revision}`;
  const said = refusal.errorMessage ? ` ("${refusal.errorMessage}")` : "";
  if (errorCode === "RepoNotFound" || (status === 404 && !errorCode && !what.file)) {
    const privateHint = what.hasToken ? "" : "; if it is private, set HF_TOKEN=<your token>";
    return new RepoNotFoundError(
      `model repo ${what.repoId} was not found on ${new URL(what.url).origin} (HTTP ${status})${said}: check the id (org/name)${privateHint}`,
    );
  }
  if (errorCode === "RevisionNotFound") {
    return new HubError(
      `revision "${what.revision}" of ${what.repoId} was not found (HTTP ${status})${said}: use a branch, tag or commit sha that exists`,
    );
  }
  if (status === 401 || status === 403 || errorCode === "GatedRepo") {
    const advice = what.hasToken
      ? "the token in use (HF_TOKEN or the token file) has no access: accept the model's terms on its hub page, or use a token that can read it"
      : "set HF_TOKEN=<your token> or run `huggingface-cli login`, and accept the model's terms on its hub page if it is gated";
    return new HubError(`access to ${target} was refused (HTTP ${status})${said}: ${advice}`);
  }
  if (status === 404) {
    return new HubError(
      `${target} was not found (HTTP 404 from ${what.url})${said}: check the repo id and the revision`,
    );
  }
  return new HubError(`the hub answered HTTP ${status} for ${target} (${what.url})${said}`);
}
