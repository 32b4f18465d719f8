/** `awq pull` against a mock hub: the cache layout, a second pull, revisions, and errors a user can act on. */
import assert from "node:assert/strict";
import {
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
} from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { blobEtag, demoModelDir, demoRepo, fakeCommit, MockHub } from "./fixtures/hub/mock-hub.js";
import { hubEnv, makeTempHome, runAwq } from "./fixtures/hub/run-awq.js";

const REPO = "org/tiny-chat-awq";
// Every file of the demo model is one awq-ts needs, but its README (never downloaded: not needed to run).
const NEEDED = readdirSync(demoModelDir)
  .filter((file) => file !== "README.md")
  .sort();

describe("awq pull", () => {
  const hub = new MockHub();
  const home = makeTempHome();
  const repo = demoRepo(REPO);
  repo.refs.set("dev", fakeCommit(`${REPO}@dev`));
  const env = () => hubEnv({ HF_ENDPOINT: hub.endpoint, HF_HOME: home });
  const repoDir = path.join(home, "hub", "models--org--tiny-chat-awq");

  before(async () => {
    hub.addRepo(repo);
    const binOnly = demoRepo("org/bin-only");
    binOnly.files.delete("model.safetensors");
    hub.addRepo(binOnly);
    await hub.start();
  });
  after(async () => {
    await hub.stop();
    rmSync(home, { recursive: true, force: true });
  });

  test("fills the cache in huggingface_hub's layout", async () => {
    const result = await runAwq(["pull", REPO, "--quiet"], env());
    assert.equal(result.code, 0, result.stderr);
    const commit = repo.refs.get("main")!;
    const snapshotDir = path.join(repoDir, "snapshots", commit);
    assert.equal(result.stdout.trim().split("\n").at(-1), snapshotDir);
    assert.equal(readFileSync(path.join(repoDir, "refs", "main"), "utf8"), commit);
    assert.deepEqual(readdirSync(snapshotDir).sort(), NEEDED);
    const blobNames: string[] = [];
    for (const file of NEEDED) {
      const linkPath = path.join(snapshotDir, file);
      assert.ok(lstatSync(linkPath).isSymbolicLink(), `${file} is a symlink`);
      const etag = blobEtag(file, repo.files.get(file)!);
      assert.equal(readlinkSync(linkPath), `../../blobs/${etag}`, `${file} links relatively to its blob`);
      assert.equal(realpathSync(linkPath), realpathSync(path.join(repoDir, "blobs", etag)));
      assert.ok(
        readFileSync(linkPath).equals(readFileSync(path.join(demoModelDir, file))),
        `${file} content`,
      );
      blobNames.push(etag);
    }
    assert.deepEqual(
      readdirSync(path.join(repoDir, "blobs")).sort(),
      blobNames.sort(),
      "only finished blobs",
    );
    assert.equal(
      blobEtag("model.safetensors", repo.files.get("model.safetensors")!).length,
      64,
      "LFS: sha256",
    );
    assert.equal(blobEtag("config.json", repo.files.get("config.json")!).length, 40, "small file: git sha1");
    for (const skipped of ["README.md", ".gitattributes", "pytorch_model.bin"]) {
      assert.equal(hub.downloadsOf(skipped).length, 0, `${skipped} is never downloaded`);
    }
    const cdnGets = hub.log.filter((r) => r.server === "cdn");
    assert.equal(cdnGets.length, 1, "the LFS file came through the CDN redirect");
    assert.deepEqual(
      readdirSync(path.join(home, "hub", ".locks", "models--org--tiny-chat-awq")),
      [],
      "locks released",
    );
  });

  test("a second pull downloads nothing", async () => {
    hub.log.length = 0;
    const result = await runAwq(["pull", REPO, "--quiet"], env());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      hub.log.map((r) => `${r.method} ${r.path}`),
      [`GET /api/models/${REPO}/revision/main`],
      "only the revision lookup",
    );
  });

  test("another revision reuses the blobs it shares and records refs/<revision>", async () => {
    hub.log.length = 0;
    const result = await runAwq(["pull", `${REPO}@dev`, "--quiet"], env());
    assert.equal(result.code, 0, result.stderr);
    const devCommit = repo.refs.get("dev")!;
    assert.equal(result.stdout.trim(), path.join(repoDir, "snapshots", devCommit));
    assert.equal(readFileSync(path.join(repoDir, "refs", "dev"), "utf8"), devCommit);
    assert.equal(
      hub.log.filter((r) => r.method === "GET" && !r.path.startsWith("/api/")).length,
      0,
      "no bytes again",
    );
    const viaFlag = await runAwq(["pull", REPO, "--revision", devCommit, "--quiet"], env());
    assert.equal(viaFlag.code, 0, viaFlag.stderr);
    assert.equal(viaFlag.stdout.trim(), path.join(repoDir, "snapshots", devCommit));
  });

  test("an unknown repo or revision says which and what to check", async () => {
    const unknownRepo = await runAwq(["pull", "org/no-such-model"], env());
    assert.equal(unknownRepo.code, 1);
    assert.match(unknownRepo.stderr, /org\/no-such-model was not found .*HTTP 404.*check the id/);
    const unknownRevision = await runAwq(["pull", `${REPO}@no-such-branch`], env());
    assert.equal(unknownRevision.code, 1);
    assert.match(unknownRevision.stderr, /revision "no-such-branch" of org\/tiny-chat-awq was not found/);
  });

  test("a repo with only .bin weights is refused with what to do", async () => {
    const result = await runAwq(["pull", "org/bin-only"], env());
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no safetensors weights, only pytorch_model\.bin/);
    assert.match(result.stderr, /convert/);
    assert.equal(
      existsSync(path.join(home, "hub", "models--org--bin-only", "blobs")),
      false,
      "nothing downloaded",
    );
  });

  test("network down: says offline mode exists and whether the cache has the model", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const port = (server.address() as { port: number }).port;
        server.close(() => resolve(port));
      });
    });
    const downEnv = { ...env(), HF_ENDPOINT: `http://127.0.0.1:${closedPort}` };
    const cached = await runAwq(["pull", REPO], downEnv);
    assert.equal(cached.code, 1);
    assert.match(cached.stderr, /ECONNREFUSED/);
    assert.match(cached.stderr, /the cache has org\/tiny-chat-awq@main at .* HF_HUB_OFFLINE=1 will use it/);
    const uncached = await runAwq(["pull", "org/other"], downEnv);
    assert.equal(uncached.code, 1);
    assert.match(
      uncached.stderr,
      /no snapshot of org\/other@main .*offline mode \(HF_HUB_OFFLINE=1\) cannot help yet/,
    );
  });

  test("offline: the cache answers, and a model not in it is an error that says to pull", async () => {
    const offline = { ...env(), HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" };
    hub.log.length = 0;
    const cached = await runAwq(["pull", REPO], offline);
    assert.equal(cached.code, 0, cached.stderr);
    assert.equal(cached.stdout.trim(), path.join(repoDir, "snapshots", repo.refs.get("main")!));
    const missing = await runAwq(["pull", "org/never-pulled"], offline);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /HF_HUB_OFFLINE=1.*no snapshot of org\/never-pulled@main.*awq pull org\/never-pulled/,
    );
    assert.equal(hub.log.length, 0, "no request in offline mode");
  });
});
