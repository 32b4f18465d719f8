/**
 * Shared setup of the server suites: the demo model on the CPU backend behind a real server on port 0.
 * (Not a test file itself: the test-*.test.ts files import it.)
 */

import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { LLM, type LLMLoadOptions } from "../src/llm.js";
import { buildServer, type ServerOptions } from "../src/server/app.js";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const modelDir = `${repoRoot}models/tiny-chat-awq`;
export const MODEL_NAME = "tiny-chat";

export interface TestServer {
  url: string;
  llm: LLM;
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function loadTestModel(opts: Partial<LLMLoadOptions> = {}): Promise<LLM> {
  return LLM.load({ model: modelDir, backend: "cpu", maxModelLen: 256, numBlocks: 256, ...opts });
}

/** A server over `llm` listening on a free loopback port. close() stops the server (not the model). */
export async function startTestServer(llm: LLM, opts: Partial<ServerOptions> = {}): Promise<TestServer> {
  const app = await buildServer({
    engine: llm.engine,
    tokenizer: llm.tokenizer,
    chatFormatter: llm.chatFormatter,
    maxModelLen: llm.engine.maxModelLen,
    servedModelNames: [MODEL_NAME],
    modelPath: llm.modelPath,
    logLevel: process.env.AWQ_TEST_LOG ?? "silent",
    ...opts,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, llm, app, close: () => app.close() };
}

/** Polls until `check` holds (the engine frees blocks a step after an abort), or fails after `ms`. */
export async function eventually(check: () => boolean, ms = 5_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  // biome-ignore lint/suspicious/noExplicitAny: each test reads the response fields it checks
): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: res.status, headers: res.headers, json };
}

/** Reads an SSE body into its `data:` payloads (parsed JSON, or the string "[DONE]"). */
export async function readSse(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .map((event) => event.trim())
    .filter((event) => event.startsWith("data: "))
    .map((event) => event.slice(6))
    .map((data) => (data === "[DONE]" ? data : JSON.parse(data)));
}
