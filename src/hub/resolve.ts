/** Turns a `--model` value into a local folder: an existing folder as is, or a hub id through the cache. */
import { stat } from "node:fs/promises";
import path from "node:path";
import { DEMO_MODEL, DEMO_MODEL_ALIAS } from "../demo-model.js";
import { readHubEnv } from "./env.js";
import { HubError, RepoNotFoundError } from "./errors.js";
import { createProgressReporter, type FileProgress } from "./progress.js";
import { downloadSnapshot } from "./snapshot-download.js";

export interface ResolveOptions {
  /** Branch, tag or commit sha; overrides an `@REV` suffix in the spec. Default "main". */
  revision?: string;
  /** Called as files download. Without it, progress bars go to stderr when it is a terminal. */
  onProgress?: (event: FileProgress) => void;
  /** Use the cache only (also on when HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** No progress bars even on a terminal. */
  quiet?: boolean;
  /** Stops the download; partial files stay in the cache and the next call resumes them. */
  signal?: AbortSignal;
}

export interface HubModelId {
  repoId: string;
  revision?: string;
}

/** `org/name` or `org/name@REV`; each part letters, digits, `-`, `_`, `.`. */
const HUB_ID = /^([A-Za-z0-9][\w.-]*\/[\w.-]+)(?:@(.+))?$/;

/** Reads a hub id from a model spec, or undefined when the spec cannot be one (it looks like a path). */
export function parseHubId(spec: string): HubModelId | undefined {
  const match = HUB_ID.exec(spec);
  if (!match || match[1]!.includes("..")) return undefined;
  return { repoId: match[1]!, revision: match[2] };
}

async function isDirectory(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/**
 * Whether a spec that is not an existing folder was meant as a path: not shaped like a hub id, or shaped like
 * one whose first part is a folder here (`models/nope` when `./models` exists).
 */
async function looksLikePath(spec: string): Promise<boolean> {
  const id = parseHubId(spec);
  if (!id) return true;
  return isDirectory(path.resolve(id.repoId.split("/")[0]!));
}

/**
 * Resolves `spec` (a local folder, `org/name` or `org/name@REV`, or `"demo"` for the demo model shipped in the
 * package) to the absolute path of a model folder. A spec that looks like a path and is no folder fails with
 * "no such model folder" without asking the hub.
 */
export async function resolveModelPath(spec: string, opts: ResolveOptions = {}): Promise<string> {
  const absolute = path.resolve(spec);
  const info = await stat(absolute).catch(() => undefined);
  if (info?.isDirectory()) return absolute;
  if (info)
    throw new HubError(`model "${spec}" is a file; --model takes a model folder or a hub id (org/name)`);
  if (spec === DEMO_MODEL_ALIAS) return DEMO_MODEL;
  if (await looksLikePath(spec)) {
    const hint = parseHubId(spec)
      ? ` ("${spec.split("/")[0]}" is a folder here, so this is read as a path, not a hub id)`
      : " (hub ids look like org/name)";
    throw new HubError(`no such model folder: ${absolute}${hint}`);
  }
  try {
    return await pullHubModel(spec, opts);
  } catch (err) {
    // "models/foo" may be a folder the user expected here, or a hub id: say both were tried.
    if (err instanceof RepoNotFoundError) {
      throw new HubError(`there is no folder ${absolute}, and as a hub id: ${err.message}`);
    }
    throw err;
  }
}

/** Downloads (or finds in the cache) hub model `id` (`org/name` or `org/name@REV`); returns its snapshot folder. */
export async function pullHubModel(id: string, opts: ResolveOptions = {}): Promise<string> {
  const hubId = parseHubId(id);
  if (!hubId) throw new HubError(`"${id}" is not a hub model id: expected org/name or org/name@revision`);
  const env = readHubEnv();
  if (opts.offline) env.offline = true;
  const revision = opts.revision ?? hubId.revision ?? "main";
  const reporter = opts.onProgress
    ? { update: opts.onProgress, note: (text: string) => process.stderr.write(`${text}\n`), stop() {} }
    : createProgressReporter({ quiet: opts.quiet });
  try {
    return await downloadSnapshot({ repoId: hubId.repoId, revision, env, reporter, signal: opts.signal });
  } finally {
    reporter.stop();
  }
}
