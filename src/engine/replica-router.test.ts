/**
 * The replica router's decisions on stand-in replicas whose load the test sets (the end-to-end behaviour over
 * two real CPU engines is test/server-data-parallel.test.ts).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Engine } from "./engine.js";
import { OutputStream } from "./output-stream.js";
import { prefixBlockKeys, ReplicaRouter } from "./replica-router.js";
import type { EngineRequest, EngineStats, RequestOutput } from "./types.js";

/** The parts of an Engine the router uses, with a settable load and a record of what it was given. */
class StandInReplica {
  readonly maxModelLen = 4096;
  readonly blockSize = 4;
  readonly maxPromptLogprobs = 20;
  readonly eosTokenIds = [2];
  running = 0;
  readonly received: string[] = [];
  readonly aborted: string[] = [];
  readonly streams = new Map<string, OutputStream>();
  stats(): EngineStats {
    return { running: this.running, waiting: 0, kvCacheUsage: 0, numBlocks: 8, freeBlocks: 8 };
  }
  generate(req: EngineRequest): AsyncIterable<RequestOutput> {
    const id = req.requestId!;
    this.received.push(id);
    const stream = new OutputStream(() => this.abort(id));
    this.streams.set(id, stream);
    return stream;
  }
  abort(id: string): void {
    this.aborted.push(id);
    this.finish(id, "abort");
  }
  finish(id: string, reason: "length" | "abort"): void {
    this.streams.get(id)?.push({
      requestId: id,
      textDelta: "",
      tokenIdsDelta: [],
      logprobsDelta: [],
      finished: true,
      finishReason: reason,
      stopReason: null,
      promptTokens: 1,
      cachedTokens: 0,
      completionTokens: 0,
    });
  }
}

function routerOver(count: number, opts = {}) {
  const replicas = Array.from({ length: count }, () => new StandInReplica());
  return { replicas, router: new ReplicaRouter(replicas as unknown as Engine[], opts) };
}

/** A prompt of `blocks` full 4-token blocks: a shared head of `shared` blocks, then blocks from `seed`. */
function prompt(shared: number, blocks: number, seed: number): number[] {
  return Array.from({ length: blocks * 4 }, (_, i) => (i < shared * 4 ? 100 + i : seed * 1000 + i));
}

describe("replica router", () => {
  test("prefix keys: one per full block, equal exactly for equal prefixes", () => {
    const a = prefixBlockKeys([1, 2, 3, 4, 5, 6, 7, 8, 9], 4);
    assert.equal(a.length, 2);
    assert.deepEqual(prefixBlockKeys([1, 2, 3, 4, 0, 0, 0, 0], 4)[0], a[0]);
    assert.notEqual(prefixBlockKeys([1, 2, 3, 4, 0, 0, 0, 0], 4)[1], a[1]);
    assert.notEqual(
      prefixBlockKeys([9, 2, 3, 4, 5, 6, 7, 8], 4)[1],
      a[1],
      "a block's key covers the blocks before it",
    );
    assert.deepEqual(prefixBlockKeys([1, 2, 3], 4), []);
  });

  test("without affinity: least loaded, ties in turn", () => {
    const { replicas, router } = routerOver(3);
    assert.deepEqual(
      [1, 2, 3].map((s) => router.route(prompt(0, 1, s))),
      [0, 1, 2],
    );
    replicas[0].running = 5;
    replicas[2].running = 1;
    assert.equal(router.route(prompt(0, 1, 9)), 1);
    assert.equal(router.route([7]), 1, "a prompt shorter than a block has no affinity");
  });

  test("a shared prefix goes where its longest known prefix went, unless that replica is overloaded", () => {
    const { replicas, router } = routerOver(2, { balanceAbsThreshold: 4, balanceRelThreshold: 2 });
    const first = router.route(prompt(3, 4, 1));
    // Idle replicas take turns, so without affinity the next request would go to the other one.
    assert.equal(router.route(prompt(3, 5, 2)), first);
    assert.equal(router.route(prompt(1, 2, 3)), first, "one shared block is enough");
    // A longer match wins over a shorter one.
    replicas[first].running = 3; // not enough to pass it over (4 more than the other)
    const other = 1 - first;
    assert.equal(router.route(prompt(3, 4, 4)), first);
    // Overloaded: more than 4 above the least loaded and more than twice its load.
    replicas[first].running = 6;
    assert.equal(router.route(prompt(3, 4, 5)), other);
    // ... and the prefix now belongs to where it was last computed.
    replicas[first].running = 0;
    assert.equal(router.route(prompt(3, 4, 6)), other);
  });

  test("the affinity table forgets the least recently used prefixes beyond its size", () => {
    const { router } = routerOver(3, { maxAffinityEntries: 2 });
    assert.equal(router.route(prompt(0, 1, 1)), 0); // 1 key
    assert.equal(router.route(prompt(0, 2, 2)), 1); // 2 more keys: the first prompt's is dropped
    assert.equal(router.route(prompt(0, 2, 2)), 1, "remembered");
    assert.equal(router.route(prompt(0, 1, 1)), 2, "forgotten: routed by load (the next in turn)");
  });

  test("generate / abort reach the owning replica; ids are unique across replicas; shutdown closes all", async () => {
    const { replicas, router } = routerOver(2);
    const s0 = router.generate({ requestId: "a", promptTokenIds: prompt(0, 1, 1), params: {} });
    router.generate({ requestId: "b", promptTokenIds: prompt(0, 1, 2), params: {} });
    assert.deepEqual([replicas[0].received, replicas[1].received], [["a"], ["b"]]);
    assert.throws(
      () => router.generate({ requestId: "a", promptTokenIds: [1], params: {} }),
      /request id a is already in use/,
    );
    router.abort("b");
    assert.deepEqual([replicas[0].aborted, replicas[1].aborted], [[], ["b"]]);
    router.abort("unknown");
    // A finished request's id is free again.
    replicas[0].finish("a", "length");
    for await (const out of s0) assert.equal(out.finishReason, "length");
    router.generate({ requestId: "a", promptTokenIds: [1], params: {} });
    // A consumer that leaves early aborts its request on its replica.
    const s2 = router.generate({ requestId: "c", promptTokenIds: prompt(0, 1, 3), params: {} });
    const owner = replicas.findIndex((r) => r.received.includes("c"));
    await s2[Symbol.asyncIterator]().return?.();
    assert.ok(replicas[owner].aborted.includes("c"));
  });
});
