/**
 * The chat page's request code (src/server/web/chat-client.ts) run in Node against a real server on the
 * demo model: streamed text and usage, timing, errors as ChatApiError (401 without the key, 400 on a bad
 * field), abort closing the request on the server, and network failures (no server; a connection cut
 * mid-answer) as ChatNetworkError, apart from API errors.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import type { LLM } from "../src/llm.js";
import { ChatApiError, ChatNetworkError, streamChat } from "../src/server/web/chat-client.js";
import { eventually, loadTestModel, startTestServer, type TestServer } from "./server-harness.js";

const KEY = "client-test-key";
let llm: LLM;
let server: TestServer;

before(async () => {
  llm = await loadTestModel({ maxModelLen: 1024 });
  server = await startTestServer(llm, { apiKeys: [KEY] });
});

after(async () => {
  await server?.close();
  await llm?.dispose();
});

const messages = [{ role: "user" as const, content: "Tell me a fortune." }];

test("streams text piece by piece and reports usage and timing", async () => {
  const pieces: string[] = [];
  const outcome = await streamChat({
    baseUrl: server.url,
    apiKey: KEY,
    messages,
    params: { temperature: 0, max_tokens: 20 },
    onText: (delta) => pieces.push(delta),
  });
  assert.ok(pieces.length > 1, "more than one piece arrived");
  assert.equal(pieces.join(""), outcome.text);
  assert.ok(["stop", "length"].includes(outcome.finishReason ?? ""), `finish ${outcome.finishReason}`);
  assert.ok(outcome.completionTokens > 0 && outcome.completionTokens <= 20);
  assert.ok(outcome.timeToFirstTokenMs !== null && outcome.timeToFirstTokenMs > 0);
  assert.ok(outcome.totalMs >= outcome.timeToFirstTokenMs);
  if (outcome.completionTokens > 1) assert.ok((outcome.tokensPerSecond ?? 0) > 0);

  const [direct] = await llm.generate(llm.applyChatTemplate(messages), { temperature: 0, maxTokens: 20 });
  assert.equal(outcome.text, direct!.text, "the same greedy text as the engine gives directly");
  assert.equal(outcome.completionTokens, direct!.usage.completionTokens, "token count from the usage chunk");
});

test("a missing key is a 401 ChatApiError; a bad field is a 400 naming it", async () => {
  const request = { baseUrl: server.url, messages, onText: () => {} };
  await assert.rejects(streamChat({ ...request, apiKey: "", params: {} }), (err: unknown) => {
    assert.ok(err instanceof ChatApiError);
    assert.equal(err.status, 401);
    assert.match(err.message, /API key/);
    return true;
  });
  await assert.rejects(
    streamChat({ ...request, apiKey: KEY, params: { temperature: 7 } }),
    (err: unknown) => {
      assert.ok(err instanceof ChatApiError);
      assert.equal(err.status, 400);
      assert.match(err.message, /temperature/);
      return true;
    },
  );
});

test("abort mid-stream ends with finishReason abort and the server stops generating", async () => {
  const controller = new AbortController();
  let received = 0;
  const outcome = await streamChat({
    baseUrl: server.url,
    apiKey: KEY,
    messages,
    params: { max_tokens: 800, ignore_eos: true },
    signal: controller.signal,
    onText: () => {
      if (++received === 5) controller.abort();
    },
  });
  assert.equal(outcome.finishReason, "abort");
  assert.ok(outcome.completionTokens >= 5 && outcome.completionTokens < 800);
  await eventually(() => llm.engine.stats().running === 0, 5_000, "the engine to drop the aborted request");
});

test("a 401 says which: a missing key and a wrong key carry different codes", async () => {
  const request = { baseUrl: server.url, messages, params: {}, onText: () => {} };
  const codeOf = async (apiKey: string) => {
    try {
      await streamChat({ ...request, apiKey });
    } catch (err) {
      assert.ok(err instanceof ChatApiError && err.status === 401);
      return err.code;
    }
    assert.fail("no 401");
  };
  assert.equal(await codeOf(""), "missing_api_key");
  assert.equal(await codeOf("wrong-key"), "invalid_api_key");
});

test("no server is a ChatNetworkError (not an API error); a cut mid-answer says text had come", async () => {
  // A port that was just free: nothing listens there.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const closedUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  await assert.rejects(
    streamChat({ baseUrl: closedUrl, apiKey: "", messages, params: {}, onText: () => {} }),
    (err: unknown) => {
      assert.ok(err instanceof ChatNetworkError, String(err));
      assert.equal(err.partial, false);
      assert.match(err.message, /^the connection failed \(fetch failed: ECONNREFUSED\)$/);
      return true;
    },
  );

  // A server that sends one piece of an answer and then drops the connection.
  const cutting = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "text/event-stream" });
    const chunk = { choices: [{ index: 0, delta: { content: "Half an" }, finish_reason: null }] };
    response.write(`data: ${JSON.stringify(chunk)}\n\n`, () =>
      setTimeout(() => response.socket?.destroy(), 20),
    );
  });
  await new Promise<void>((resolve) => cutting.listen(0, "127.0.0.1", resolve));
  const pieces: string[] = [];
  try {
    await assert.rejects(
      streamChat({
        baseUrl: `http://127.0.0.1:${(cutting.address() as AddressInfo).port}`,
        apiKey: "",
        messages,
        params: {},
        onText: (delta) => pieces.push(delta),
      }),
      (err: unknown) => {
        assert.ok(err instanceof ChatNetworkError, String(err));
        assert.equal(err.partial, true);
        assert.match(err.message, /^the connection broke mid-answer/);
        return true;
      },
    );
    assert.deepEqual(pieces, ["Half an"]);
  } finally {
    await new Promise<void>((resolve) => cutting.close(() => resolve()));
  }
});
