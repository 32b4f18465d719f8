/**
 * Data parallelism (issue 19 item 3): two CPU replicas of the demo model behind one server
 * (LLM.load({ dataParallelSize: 2 }) -> engine/replica-router.ts). Which replica ran a request is read where
 * an operator would read it: /metrics, per `engine` label.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Backend } from "../src/backend/backend.js";
import { CpuBackend } from "../src/backend/cpu/cpu-backend.js";
import { Engine } from "../src/engine/engine.js";
import { ReplicaRouter } from "../src/engine/replica-router.js";
import { EngineClosedError } from "../src/engine/types.js";
import type { LLM } from "../src/llm.js";
import { openModel } from "../src/model/load.js";
import { buildServer } from "../src/server/app.js";
import { Tokenizer } from "../src/tokenizer/tokenizer.js";
import {
  eventually,
  loadTestModel,
  MODEL_NAME,
  modelDir,
  postJson,
  startTestServer,
  type TestServer,
} from "./server-harness.js";

/** A metric's value for one engine label (0 when absent). */
async function metric(url: string, name: string, engine: number): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const re = new RegExp(`^${name}\\{model_name="${MODEL_NAME}",engine="${engine}"\\} (\\S+)$`, "m");
  const m = re.exec(text);
  return m === null ? 0 : Number(m[1]);
}

/** Prefix-cache queries and hits of both replicas. */
async function cacheCounters(url: string) {
  const read = (name: string) =>
    Promise.all([0, 1].map((e) => metric(url, `vllm:prefix_cache_${name}_total`, e)));
  return { queries: await read("queries"), hits: await read("hits") };
}

function complete(url: string, prompt: string, extra: Record<string, unknown> = {}) {
  return postJson(`${url}/v1/completions`, {
    model: MODEL_NAME,
    prompt,
    max_tokens: 4,
    temperature: 0,
    ...extra,
  });
}

/** A system prompt of well over two 16-token KV blocks, shared by the affinity requests. */
const SHARED_PREFIX =
  "User: You are a careful assistant who answers in one short sentence, never more, and always politely, " +
  "even when the question is odd. Here is my question:";

describe("data parallelism: two CPU replicas behind one server", () => {
  let llm: LLM;
  let server: TestServer;
  before(async () => {
    llm = await loadTestModel({ dataParallelSize: 2 });
    server = await startTestServer(llm);
  });
  after(async () => {
    await server?.close();
    await llm?.dispose();
  });

  test("two real engines, each with its own backend and KV cache; /metrics has both engine labels", async () => {
    assert.ok(llm.engine instanceof ReplicaRouter);
    const [a, b] = llm.engine.replicas;
    assert.notEqual(a, b);
    assert.notEqual(a.backend, b.backend);
    assert.ok(a.backend instanceof CpuBackend && b.backend instanceof CpuBackend);
    assert.notEqual(a.blockManager, b.blockManager);
    assert.equal(llm.engine.stats().numBlocks, a.numBlocks + b.numBlocks);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const engine of ["0", "1"]) {
      assert.match(
        text,
        new RegExp(`vllm:kv_cache_usage_perc\\{model_name="${MODEL_NAME}",engine="${engine}"\\}`),
      );
      assert.match(
        text,
        new RegExp(`vllm:cache_config_info\\{.*num_gpu_blocks="256",engine="${engine}"\\} 1`),
      );
    }
  });

  test("concurrent requests spread over both replicas", async () => {
    const before = await cacheCounters(server.url);
    const generated = (e: number) => metric(server.url, "vllm:generation_tokens_total", e);
    const generatedBefore = [await generated(0), await generated(1)];
    const prompts = ["The sky is", "Once upon a time", "My favourite fruit", "In the morning I"];
    const replies = await Promise.all(
      prompts.map((p) => complete(server.url, `User: ${p}`, { max_tokens: 8 })),
    );
    for (const r of replies) assert.equal(r.status, 200, JSON.stringify(r.json));
    const after = await cacheCounters(server.url);
    for (const engine of [0, 1]) {
      assert.ok(after.queries[engine] > before.queries[engine], `replica ${engine} got no request`);
      // Request series are labelled by the replica that ran the request, too.
      assert.ok(
        (await generated(engine)) > generatedBefore[engine],
        `engine ${engine}: no generation tokens`,
      );
    }
    const completionTokens = replies.reduce((sum, r) => sum + r.json.usage.completion_tokens, 0);
    const counted = (await generated(0)) + (await generated(1)) - generatedBefore[0] - generatedBefore[1];
    assert.equal(counted, completionTokens);
    assert.equal(llm.engine.stats().running, 0);
  });

  test("requests sharing a prompt prefix land on the replica that holds it (its prefix-cache hits)", async () => {
    // The first request computes the shared blocks on some replica; with both replicas idle, a request without
    // affinity would go to the other one (ties are taken in turn), so hits on the first one show the routing.
    const start = await cacheCounters(server.url);
    assert.equal((await complete(server.url, `${SHARED_PREFIX} what is rain?`)).status, 200);
    const first = await cacheCounters(server.url);
    const holder = first.queries[0] > start.queries[0] ? 0 : 1;
    assert.ok(first.queries[holder] > start.queries[holder]);
    for (const question of ["why is grass green?", "how far is the moon?", "what is a cloud?"]) {
      assert.equal((await complete(server.url, `${SHARED_PREFIX} ${question}`)).status, 200);
    }
    const end = await cacheCounters(server.url);
    const prefixTokens = llm.encode(SHARED_PREFIX).length;
    const cachedPerRequest = Math.floor(prefixTokens / 16) * 16;
    assert.ok(cachedPerRequest >= 32);
    assert.ok(
      end.hits[holder] - first.hits[holder] >= 3 * cachedPerRequest,
      `replica ${holder}: ${end.hits[holder] - first.hits[holder]} hit tokens, expected >= ${3 * cachedPerRequest}`,
    );
    assert.equal(end.queries[1 - holder], first.queries[1 - holder], "the other replica saw none of them");
    // Unrelated prompts, one after another, alternate between the idle replicas.
    const spread = await cacheCounters(server.url);
    assert.equal((await complete(server.url, "User: apples")).status, 200);
    assert.equal((await complete(server.url, "User: pears")).status, 200);
    const afterSpread = await cacheCounters(server.url);
    for (const engine of [0, 1]) assert.ok(afterSpread.queries[engine] > spread.queries[engine]);
  });

  test("abort: a client that leaves frees its replica; abort by id reaches the owning replica", async () => {
    const controller = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: MODEL_NAME,
        prompt: "User: count",
        max_tokens: 200,
        stream: true,
        ignore_eos: true,
      }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    assert.equal(llm.engine.stats().running + llm.engine.stats().waiting, 1);
    controller.abort();
    await eventually(() => llm.engine.stats().running + llm.engine.stats().waiting === 0, 5000, "the abort");

    const router = llm.engine as ReplicaRouter;
    const outputs = router.generate({
      requestId: "dp-abort",
      promptTokenIds: llm.encode("User: tell me a long story"),
      params: { maxTokens: 200, ignoreEos: true, temperature: 0 },
    });
    setTimeout(() => router.abort("dp-abort"), 50);
    let last = null;
    for await (const out of outputs) last = out;
    assert.equal(last?.finishReason, "abort");
    for (const replica of router.replicas) assert.equal(replica.stats().freeBlocks, replica.numBlocks);
  });
});

/** A CPU backend whose steps fail: a replica that breaks. */
class FailingBackend extends CpuBackend {
  override async step(): Promise<never> {
    throw new Error("injected failure of replica 1");
  }
}

describe("data parallelism: a failing replica, shutdown", () => {
  test("one failing replica fails only its requests; shutdown closes every replica", async () => {
    const model = await openModel(modelDir);
    const tokenizer = await Tokenizer.load(modelDir);
    const backends: Backend[] = [new CpuBackend(), new FailingBackend()];
    const engines: Engine[] = [];
    for (const backend of backends)
      engines.push(await Engine.create({ model, backend, tokenizer, maxModelLen: 256, numBlocks: 64 }));
    const router = new ReplicaRouter(engines);
    const app = await buildServer({
      engine: router,
      tokenizer,
      chatFormatter: null,
      maxModelLen: router.maxModelLen,
      servedModelNames: [MODEL_NAME],
      modelPath: modelDir,
      logLevel: "silent",
    });
    try {
      await app.listen({ host: "127.0.0.1", port: 0 });
      const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
      // Count where the router sends each request.
      const routed = [0, 0];
      const route = router.route.bind(router);
      router.route = (prompt) => {
        const index = route(prompt);
        routed[index]++;
        return index;
      };
      const prompts = ["User: one", "User: two", "User: three", "User: four", "User: five", "User: six"];
      const replies = await Promise.all(prompts.map((p) => complete(url, p)));
      const ok = replies.filter((r) => r.status === 200);
      const failed = replies.filter((r) => r.status !== 200);
      assert.ok(routed[0] > 0 && routed[1] > 0, `routed ${routed}`);
      assert.equal(ok.length, routed[0], JSON.stringify(replies.map((r) => r.json)));
      assert.equal(failed.length, routed[1]);
      for (const r of failed) assert.match(r.json.error.message, /injected failure of replica 1/);
      for (const r of ok) assert.equal(r.json.choices[0].finish_reason, "length");
      assert.equal(router.stats().running + router.stats().waiting, 0);

      await router.shutdown();
      for (const engine of engines)
        assert.throws(() => engine.generate({ promptTokenIds: [1, 2], params: {} }), EngineClosedError);
      assert.throws(() => router.generate({ promptTokenIds: [1, 2], params: {} }), EngineClosedError);
      assert.equal((await complete(url, "User: six")).status, 503);
    } finally {
      await app.close();
      for (const backend of backends) await backend.dispose();
      await model.checkpoint.close();
    }
  });
});
