import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PromiseLru } from "./promise-lru.js";

describe("PromiseLru", () => {
  test("creates once per key and returns the cached promise after", async () => {
    const lru = new PromiseLru<number>(4, () => undefined);
    let calls = 0;
    const make = () => {
      calls++;
      return Promise.resolve(7);
    };
    const a = lru.getOrCreate("k", make);
    const b = lru.getOrCreate("k", make);
    assert.equal(a, b);
    assert.equal(await b, 7);
    assert.equal(calls, 1);
  });

  test("evicts the least recently used entry, handing its value to evict", async () => {
    const evicted: string[] = [];
    const lru = new PromiseLru<string>(2, (v) => evicted.push(v));
    lru.getOrCreate("a", async () => "A");
    lru.getOrCreate("b", async () => "B");
    lru.getOrCreate("a", async () => "A2"); // touch a: b is now the oldest
    lru.getOrCreate("c", async () => "C");
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(evicted, ["B"]);
    assert.deepEqual(
      [...lru.entries()].map(([k]) => k),
      ["a", "c"],
    );
    assert.equal(await lru.get("a"), "A");
  });

  test("a rejected promise leaves the cache so the next request retries", async () => {
    const lru = new PromiseLru<number>(2, () => undefined);
    await assert.rejects(
      lru.getOrCreate("k", async () => {
        throw new Error("bad grammar");
      }),
      /bad grammar/,
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(lru.has("k"), false);
    assert.equal(await lru.getOrCreate("k", async () => 3), 3);
  });

  test("a late rejection does not remove a newer entry under the same key", async () => {
    const lru = new PromiseLru<number>(1, () => undefined);
    let reject!: (e: Error) => void;
    const first = lru.getOrCreate("k", () => new Promise<number>((_, rej) => (reject = rej)));
    lru.getOrCreate("other", async () => 1); // evicts k
    const second = lru.getOrCreate("k", async () => 2); // evicts other
    reject(new Error("late"));
    await assert.rejects(first, /late/);
    await new Promise((r) => setImmediate(r));
    assert.equal(lru.get("k"), second);
  });

  test("refuses a capacity that is not a positive integer", () => {
    assert.throws(
      () => new PromiseLru<number>(0, () => undefined),
      /capacity must be a positive integer, got 0/,
    );
  });
});
