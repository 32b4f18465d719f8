/** OutputStream: push before or after the pull, the last output ends it, leaving early aborts once. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { OutputStream } from "./output-stream.js";
import type { RequestOutput } from "./types.js";

function output(text: string, finished = false): RequestOutput {
  return {
    requestId: "r",
    textDelta: text,
    tokenIdsDelta: [],
    logprobsDelta: [],
    finished,
    finishReason: finished ? "stop" : null,
    stopReason: null,
    promptTokens: 1,
    cachedTokens: 0,
    completionTokens: 0,
  };
}

test("outputs queued before and pushed after the pull arrive in order; nothing after the finished one", async () => {
  let aborts = 0;
  const stream = new OutputStream(() => aborts++);
  stream.push(output("a"));
  const texts: string[] = [];
  const reading = (async () => {
    for await (const out of stream) texts.push(out.textDelta);
  })();
  await new Promise((resolve) => setImmediate(resolve));
  stream.push(output("b"));
  stream.push(output("c", true));
  stream.push(output("late"));
  await reading;
  assert.deepEqual(texts, ["a", "b", "c"]);
  assert.equal(aborts, 0);
});

test("leaving the loop early aborts the request once; a finished stream does not", async () => {
  let aborts = 0;
  const stream = new OutputStream(() => aborts++);
  stream.push(output("a"));
  stream.push(output("b"));
  for await (const _ of stream) break;
  assert.equal(aborts, 1);
  const done = new OutputStream(() => aborts++);
  done.push(output("x", true));
  for await (const out of done) assert.equal(out.finished, true);
  assert.equal(aborts, 1);
});

test("a stream can be iterated only once", () => {
  const stream = new OutputStream(() => {});
  stream[Symbol.asyncIterator]();
  assert.throws(() => stream[Symbol.asyncIterator](), /can be iterated only once/);
});
