/** Downloads that go wrong: a dropped connection, a killed process, a flipped byte, two pulls at once. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { blobEtag, demoRepo, MockHub } from "./fixtures/hub/mock-hub.js";
import { hubEnv, makeTempHome, runAwq, startAwq } from "./fixtures/hub/run-awq.js";

const REPO = "org/tiny-chat-awq";
const WEIGHTS = "model.safetensors";

describe("hub downloads that go wrong", () => {
  const hub = new MockHub();
  const repo = demoRepo(REPO);
  const weights = repo.files.get(WEIGHTS)!;
  const weightsSha = blobEtag(WEIGHTS, weights);
  const homes: string[] = [];
  const freshEnv = () => {
    const home = makeTempHome();
    homes.push(home);
    const repoDir = path.join(home, "hub", "models--org--tiny-chat-awq");
    return { home, repoDir, env: hubEnv({ HF_ENDPOINT: hub.endpoint, HF_HOME: home }) };
  };
  const cdnGets = () => hub.log.filter((r) => r.server === "cdn" && r.method === "GET");
  const sha256Of = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

  before(async () => {
    hub.addRepo(repo);
    await hub.start();
  });
  after(async () => {
    await hub.stop();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  });

  test("a connection dropped mid-body is resumed with a Range request", async () => {
    const { repoDir, env } = freshEnv();
    hub.log.length = 0;
    const cutAt = 5 * 1024 * 1024;
    hub.faults = { cutOnce: { file: WEIGHTS, afterBytes: cutAt } };
    const result = await runAwq(["pull", REPO, "--quiet"], env);
    assert.equal(result.code, 0, result.stderr);
    const [first, second] = cdnGets();
    assert.equal(cdnGets().length, 2);
    assert.equal(first!.range, undefined);
    assert.equal(first!.bytesSent, cutAt);
    // The client resumes from what it had written (the last bytes in flight may be lost with the socket).
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(second!.range ?? "")?.[1]);
    assert.ok(resumedAt > cutAt - 256 * 1024 && resumedAt <= cutAt, `resumed at ${second!.range}`);
    assert.equal(resumedAt + second!.bytesSent, weights.length, "the rest, and only the rest, fetched again");
    assert.equal(sha256Of(path.join(repoDir, "blobs", weightsSha)), weightsSha);
  });

  test("a killed pull leaves an .incomplete file that the next pull resumes", async () => {
    const { repoDir, env } = freshEnv();
    hub.log.length = 0;
    let stalled!: () => void;
    const stall = new Promise<void>((resolve) => {
      stalled = resolve;
    });
    hub.faults = { stallOnce: { file: WEIGHTS, afterBytes: 3 * 1024 * 1024, onStall: stalled } };
    const first = startAwq(["pull", REPO, "--quiet"], env);
    await stall;
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the client write what it received
    first.child.kill("SIGKILL");
    await first.done;
    const incomplete = path.join(repoDir, "blobs", `${weightsSha}.incomplete`);
    const have = statSync(incomplete).size;
    assert.ok(have > 0 && have < weights.length, `partial file of ${have} bytes`);
    // The killed process's lock is still there; it must be recognised as stale.
    const lockDir = path.join(repoDir, "..", ".locks", "models--org--tiny-chat-awq");
    assert.ok(
      readdirSync(lockDir).some((name) => name.startsWith(weightsSha)),
      "stale lock left behind",
    );

    hub.log.length = 0;
    const second = await runAwq(["pull", REPO, "--quiet"], env);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(
      cdnGets().map((r) => r.range),
      [`bytes=${have}-`],
    );
    assert.equal(sha256Of(path.join(repoDir, "blobs", weightsSha)), weightsSha);
    assert.equal(existsSync(incomplete), false);
  });

  for (const file of [WEIGHTS, "tokenizer.json"]) {
    test(`a flipped byte in ${file} is detected and no blob is accepted`, async () => {
      const { repoDir, env } = freshEnv();
      const etag = blobEtag(file, repo.files.get(file)!);
      hub.faults = { corrupt: file };
      const bad = await runAwq(["pull", REPO, "--quiet"], env);
      assert.equal(bad.code, 1);
      assert.match(
        bad.stderr,
        new RegExp(
          `download of ${file.replace(".", "\\.")} is corrupted \\(digest [0-9a-f]+ instead of ${etag}`,
        ),
      );
      assert.match(bad.stderr, /not added to the cache/);
      const blobs = readdirSync(path.join(repoDir, "blobs"));
      assert.ok(
        !blobs.includes(etag) && !blobs.includes(`${etag}.incomplete`),
        "neither blob nor partial kept",
      );
      assert.equal(existsSync(path.join(repoDir, "refs", "main")), false, "no ref to a broken snapshot");

      hub.faults = {};
      const good = await runAwq(["pull", REPO, "--quiet"], env);
      assert.equal(good.code, 0, good.stderr);
      assert.ok(readFileSync(path.join(repoDir, "blobs", etag)).equals(repo.files.get(file)!));
    });
  }

  test("two concurrent pulls produce one correct blob, each file fetched once", async () => {
    const { repoDir, env } = freshEnv();
    hub.log.length = 0;
    hub.faults = { throttleBytesPerSecond: 24 * 1024 * 1024 }; // ~0.8 s for the weights: the pulls overlap
    const [a, b] = await Promise.all([runAwq(["pull", REPO], env), runAwq(["pull", REPO], env)]);
    hub.faults = {};
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout, b.stdout);
    for (const file of readdirSync(path.join(repoDir, "snapshots", repo.refs.get("main")!))) {
      assert.equal(hub.downloadsOf(file).length, 1, `${file} downloaded once`);
    }
    const blobs = readdirSync(path.join(repoDir, "blobs"));
    assert.ok(blobs.every((name) => !name.endsWith(".incomplete")));
    assert.equal(sha256Of(path.join(repoDir, "blobs", weightsSha)), weightsSha);
    assert.deepEqual(readdirSync(path.join(repoDir, "..", ".locks", "models--org--tiny-chat-awq")), []);
  });
});
