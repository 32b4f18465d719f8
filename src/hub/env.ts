/** Where the hub lives and where its files go, read from the same variables Python's huggingface_hub reads. */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface HubEnv {
  /** Base URL of the hub, without a trailing slash (HF_ENDPOINT). */
  endpoint: string;
  /** Folder holding `models--org--name` repos (HF_HUB_CACHE, else HF_HOME/hub). */
  cacheDir: string;
  /** Bearer token for gated and private repos (HF_TOKEN, else the token file), if any. */
  token?: string;
  /** Cache only, never the network (HF_HUB_OFFLINE=1). */
  offline: boolean;
}

const TRUE_VALUES = new Set(["1", "on", "yes", "true"]);

/** Expands a leading `~` the way Python's os.path.expanduser does for these variables. */
function expandHome(value: string): string {
  return value === "~" || value.startsWith("~/") ? path.join(os.homedir(), value.slice(1)) : value;
}

/** HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HOME) return path.resolve(expandHome(env.HF_HOME));
  const xdgCache = env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : path.join(os.homedir(), ".cache");
  return path.resolve(xdgCache, "huggingface");
}

/** Reads the token the way huggingface_hub does: HF_TOKEN first, then the file `huggingface-cli login` writes. */
export function readToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.HF_TOKEN?.trim();
  if (fromEnv) return fromEnv;
  const tokenPath = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : path.join(hfHome(env), "token");
  try {
    const fromFile = readFileSync(tokenPath, "utf8").trim();
    return fromFile || undefined;
  } catch {
    return undefined; // no token file: anonymous access
  }
}

export function readHubEnv(env: NodeJS.ProcessEnv = process.env): HubEnv {
  const endpoint = (env.HF_ENDPOINT?.trim() || "https://huggingface.co").replace(/\/+$/, "");
  const explicitCache = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE; // the second is the legacy name
  const cacheDir = explicitCache ? path.resolve(expandHome(explicitCache)) : path.join(hfHome(env), "hub");
  const offline = TRUE_VALUES.has((env.HF_HUB_OFFLINE ?? "").trim().toLowerCase());
  return { endpoint, cacheDir, token: readToken(env), offline };
}
