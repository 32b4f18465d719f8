import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { readHubEnv } from "./env.js";

test("defaults follow huggingface_hub: huggingface.co, ~/.cache/huggingface/hub, online, no token", () => {
  const env = readHubEnv({ HOME: os.homedir() });
  assert.equal(env.endpoint, "https://huggingface.co");
  assert.equal(env.cacheDir, path.join(os.homedir(), ".cache", "huggingface", "hub"));
  assert.equal(env.offline, false);
});

test("HF_HUB_CACHE wins over HF_HOME/hub; HF_ENDPOINT loses its trailing slash; HF_HUB_OFFLINE=1", () => {
  assert.equal(readHubEnv({ HF_HOME: "/x/home" }).cacheDir, "/x/home/hub");
  assert.equal(readHubEnv({ HF_HOME: "/x/home", HF_HUB_CACHE: "/y/cache" }).cacheDir, "/y/cache");
  assert.equal(readHubEnv({ XDG_CACHE_HOME: "/xdg" }).cacheDir, "/xdg/huggingface/hub");
  assert.equal(readHubEnv({ HF_ENDPOINT: "http://127.0.0.1:1234/" }).endpoint, "http://127.0.0.1:1234");
  assert.equal(readHubEnv({ HF_HUB_OFFLINE: "1" }).offline, true);
  assert.equal(readHubEnv({ HF_HUB_OFFLINE: "0" }).offline, false);
});

test("the token comes from HF_TOKEN, else the token file under HF_HOME", () => {
  const home = mkdtempSync(path.join(os.tmpdir(), "awq-env-"));
  try {
    assert.equal(readHubEnv({ HF_HOME: home }).token, undefined);
    writeFileSync(path.join(home, "token"), "hf_fromfile\n");
    assert.equal(readHubEnv({ HF_HOME: home }).token, "hf_fromfile");
    assert.equal(readHubEnv({ HF_HOME: home, HF_TOKEN: "hf_fromenv" }).token, "hf_fromenv");
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
