/** A gated repo (token from HF_TOKEN or the token file), then generating from the cache with the hub gone. */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { demoModelDir, demoRepo, MockHub } from "./fixtures/hub/mock-hub.js";
import { hubEnv, makeTempHome, runAwq } from "./fixtures/hub/run-awq.js";

const GATED = "org/gated-chat";
const TOKEN = "hf_mockGatedToken123";

describe("gated repos and offline mode", () => {
  const hub = new MockHub();
  const repo = demoRepo(GATED, TOKEN);
  const homes: string[] = [];
  const freshHome = () => {
    const home = makeTempHome();
    homes.push(home);
    return home;
  };
  // Filled by the token-file test, used offline afterwards.
  let pulledHome: string | undefined;

  before(async () => {
    hub.addRepo(repo);
    await hub.start();
  });
  after(async () => {
    await hub.stop(); // stopping twice is harmless
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  });

  test("without a token: refused, with the advice to set HF_TOKEN", async () => {
    const home = freshHome();
    const result = await runAwq(["pull", GATED], hubEnv({ HF_ENDPOINT: hub.endpoint, HF_HOME: home }));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /access to org\/gated-chat@main was refused \(HTTP 401\)/);
    assert.match(result.stderr, /set HF_TOKEN=<your token> or run `huggingface-cli login`/);
    assert.equal(existsSync(path.join(home, "hub", "models--org--gated-chat", "blobs")), false);
  });

  test("with a wrong token: refused, saying that token has no access", async () => {
    const env = hubEnv({ HF_ENDPOINT: hub.endpoint, HF_HOME: freshHome(), HF_TOKEN: "hf_wrong" });
    const result = await runAwq(["pull", GATED], env);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /HTTP 403.*the token in use .* has no access/);
  });

  test("with HF_TOKEN: works, and the token never reaches the CDN", async () => {
    hub.log.length = 0;
    const env = hubEnv({ HF_ENDPOINT: hub.endpoint, HF_HOME: freshHome(), HF_TOKEN: TOKEN });
    const result = await runAwq(["pull", GATED, "--quiet"], env);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(existsSync(path.join(result.stdout.trim(), "model.safetensors")));
    const hubRequests = hub.log.filter((r) => r.server === "hub");
    const cdnRequests = hub.log.filter((r) => r.server === "cdn");
    assert.ok(hubRequests.every((r) => r.authorization === `Bearer ${TOKEN}`));
    assert.ok(cdnRequests.length > 0 && cdnRequests.every((r) => r.authorization === undefined));
  });

  test("with the token file under HF_HOME (huggingface-cli login) and the default cache HF_HOME/hub", async () => {
    const home = freshHome();
    writeFileSync(path.join(home, "token"), `${TOKEN}\n`);
    const result = await runAwq(
      ["pull", GATED, "--quiet"],
      hubEnv({ HF_ENDPOINT: hub.endpoint, HF_HOME: home }),
    );
    assert.equal(result.code, 0, result.stderr);
    const commit = repo.refs.get("main")!;
    assert.equal(
      result.stdout.trim(),
      path.join(home, "hub", "models--org--gated-chat", "snapshots", commit),
    );
    pulledHome = home;
  });

  test("HF_HUB_OFFLINE=1 generates from the cache with the hub stopped", async (t) => {
    assert.ok(pulledHome, "the token-file pull ran first");
    const endpoint = hub.endpoint;
    await hub.stop();
    const args = ["--prompt", "User: Hi", "--max-tokens", "4", "--temperature", "0", "--json"];
    // The same command on the repo's own copy of the model tells what the cached copy must give.
    const local = await runAwq(["generate", "--model", demoModelDir, ...args], hubEnv({}));
    if (local.code !== 0) {
      t.skip(
        `awq generate does not work yet on the local demo model: ${local.stderr.trim().split("\n").at(-1)}`,
      );
      return;
    }
    const cacheDir = path.join(pulledHome, "hub");
    mkdirSync(cacheDir, { recursive: true });
    const offlineEnv = hubEnv({
      HF_HUB_OFFLINE: "1",
      HF_ENDPOINT: endpoint, // nothing listens there any more
      HF_HOME: pulledHome,
      HF_HUB_CACHE: cacheDir,
    });
    const cached = await runAwq(["generate", "--model", GATED, ...args], offlineEnv);
    assert.equal(cached.code, 0, cached.stderr);
    const expected = JSON.parse(local.stdout) as { text: string; token_ids: number[] };
    const actual = JSON.parse(cached.stdout) as { text: string; token_ids: number[] };
    assert.equal(actual.token_ids.length, 4);
    assert.deepEqual(actual.token_ids, expected.token_ids);
    assert.equal(actual.text, expected.text);
  });
});
