/**
 * Issue 12's hostile inputs against a real server on the demo model: auth on every spelling of every route,
 * bodies that are too big, too deep, not UTF-8 or not well-formed UTF-16, framework errors, the queue's
 * room, request ids, CORS and Host checks, slow and idle connections, and /health while a big request is
 * being prepared.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import type { LLM } from "../src/llm.js";
import { OPEN_ROUTES } from "../src/server/auth.js";
import { registerWebRoutes } from "../src/server/web/routes.js";
import {
  loadTestModel,
  MODEL_NAME,
  postJson,
  readSse,
  startTestServer,
  type TestServer,
} from "./server-harness.js";

const KEY = "sk-hardening";
const auth = { authorization: `Bearer ${KEY}` };
const user = [{ role: "user", content: "Tell me a fortune." }];

let llm: LLM;
let server: TestServer;
let port: number;

before(async () => {
  llm = await loadTestModel();
  // With the chat page's routes, so the walk covers them too (and /assets/:name has a parameter to overflow).
  server = await startTestServer(llm, { apiKeys: [KEY], maxQueue: 4, registerWebRoutes });
  port = Number(new URL(server.url).port);
});
after(async () => {
  await server.close();
  await llm.dispose();
});

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Milliseconds until the connection closed. */
  closedAfterMs: number;
}

/** Sends raw bytes (any request target, any bytes) and reads until the server closes the connection. */
function rawRequest(
  data: string | Buffer,
  opts: { port?: number; timeoutMs?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = net.connect(opts.port ?? port, "127.0.0.1", () => socket.write(data));
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => {});
    socket.setTimeout(opts.timeoutMs ?? 10_000, () => {
      socket.destroy();
      reject(new Error("the server did not close the connection"));
    });
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const [head = "", ...rest] = text.split("\r\n\r\n");
      const [statusLine = "", ...headerLines] = head.split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const i = line.indexOf(":");
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({
        status: Number(statusLine.split(" ")[1] ?? 0),
        headers,
        body: rest.join("\r\n\r\n"),
        closedAfterMs: performance.now() - t0,
      });
    });
  });
}

function request(method: string, target: string, headers: Record<string, string> = {}, body = ""): string {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== "" || method === "POST") {
    lines.push("Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

/** A concrete path for a route pattern. */
function concrete(pattern: string): string {
  return pattern.replace(/:[A-Za-z_]+/g, "x").replace("*", MODEL_NAME);
}

/** Every way of spelling `path` that a router or proxy might treat as the same route. */
function spellings(path: string): string[] {
  const hex = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  const variants = [
    path,
    `/${hex(path[1]!)}${path.slice(2)}`, // /%761/models
    `${path.slice(0, -1)}${hex(path.at(-1)!)}`, // /generat%65
    `/${hex(path[1]!).toUpperCase()}${path.slice(2)}`,
    `http://127.0.0.1${path}`, // absolute form (a proxy request)
    `http://evil.example${path}`,
    `${path}/`,
    `/${path}`,
    path.replace(/\/(?=[^/]*$)/, "//"),
    path.toUpperCase(),
    `${path}?x=1`,
    `${path}#frag`,
    `${path};x`,
  ];
  return [...new Set(variants)];
}

describe("point 1: the API key on every route", () => {
  test("every registered route but the open ones answers 401 without a key, in every spelling", async () => {
    const routes = server.app.awqRoutes.patterns();
    assert.ok(routes.length >= 10, "the walk covers the registered routes");
    let checked = 0;
    for (const { url, methods } of routes) {
      for (const method of methods) {
        if (method === "HEAD" || OPEN_ROUTES.has(url)) continue;
        for (const target of spellings(concrete(url))) {
          const body = method === "POST" ? JSON.stringify({ prompt: "x", messages: user, tokens: [1] }) : "";
          const res = await rawRequest(request(method, target, {}, body));
          assert.equal(res.status, 401, `${method} ${target} (route ${url}): ${res.body}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 60, `${checked} spellings checked`);
  });

  test("the open routes answer without a key; a wrong key is 401 too", async () => {
    for (const path of ["/health", "/version", "/metrics", "/"]) {
      const res = await fetch(`${server.url}${path}`);
      assert.equal(res.status, 200, path);
    }
    const wrong = await postJson(
      `${server.url}/v1/completions`,
      { prompt: "x" },
      { authorization: "Bearer nope" },
    );
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.error.code, "invalid_api_key");
  });

  test("encoded spellings with the key reach the same handler as the plain one", async () => {
    const plain = await rawRequest(request("GET", "/v1/models", auth));
    const encoded = await rawRequest(request("GET", "/%761/models", auth));
    assert.equal(plain.status, 200);
    assert.equal(encoded.status, 200);
    assert.deepEqual(JSON.parse(encoded.body), JSON.parse(plain.body));
  });

  test("/generate takes JSON bodies only (a form post skips the CORS preflight)", async () => {
    for (const type of [
      "application/x-www-form-urlencoded",
      "text/plain",
      "multipart/form-data; boundary=x",
    ]) {
      const res = await fetch(`${server.url}/generate`, {
        method: "POST",
        headers: { ...auth, "content-type": type },
        body: JSON.stringify({ prompt: "x", max_tokens: 1 }),
      });
      assert.equal(res.status, 415, type);
    }
  });
});

describe("point 2: big requests", () => {
  test("a 5 MB body is refused with 413 (default --max-request-body-bytes 2 MiB); /health answers meanwhile", async () => {
    const big = JSON.stringify({ messages: [{ role: "user", content: "a".repeat(5 * 1024 * 1024) }] });
    const pending = postJson(`${server.url}/v1/chat/completions`, big, auth);
    const t0 = performance.now();
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    assert.ok(performance.now() - t0 < 1000);
    const res = await pending;
    assert.equal(res.status, 413);
    assert.equal(res.json.error.param, "body");
    assert.match(res.json.error.message, /--max-request-body-bytes/);
  });

  test("with the limit raised, a 5 MB chat is refused before tokenizing; /health and a small chat answer within a second", async () => {
    const roomy = await startTestServer(llm, { bodyLimit: 8 * 1024 * 1024 });
    try {
      const words = "Blessed are the meek, for they shall inherit the earth. ";
      const big = JSON.stringify({
        messages: [{ role: "user", content: words.repeat((5 * 1024 * 1024) / words.length) }],
      });
      const t0 = performance.now();
      const pending = postJson(`${roomy.url}/v1/chat/completions`, big);
      const [health, small] = await Promise.all([
        fetch(`${roomy.url}/health`).then((r) => ({ status: r.status, ms: performance.now() - t0 })),
        postJson(`${roomy.url}/v1/chat/completions`, { messages: user, max_tokens: 4 }).then((r) => ({
          status: r.status,
          ms: performance.now() - t0,
        })),
      ]);
      assert.equal(health.status, 200);
      assert.equal(small.status, 200);
      assert.ok(health.ms < 1000, `/health took ${health.ms} ms`);
      assert.ok(small.ms < 1000, `the small chat took ${small.ms} ms`);
      const res = await pending;
      assert.equal(res.status, 400);
      assert.equal(res.json.error.param, "messages");
      assert.match(res.json.error.message, /more than this model's context of 256 tokens/);
      assert.ok(performance.now() - t0 < 2000, "refused without tokenizing 5 MB");
    } finally {
      await roomy.close();
    }
  });

  test("/health answers within 100 ms while long prompts are being tokenized", async () => {
    // Long enough to go to the tokenizer workers, short enough to pass the early length check.
    const prompt = "In the beginning God created the heaven and the earth. ".repeat(180);
    assert.ok(llm.tokenizer.encode(prompt).length > 256, "the prompt is refused only after tokenizing");
    const pending = Array.from({ length: 8 }, () =>
      postJson(`${server.url}/v1/completions`, { prompt }, auth),
    );
    let settled = false;
    const all = Promise.all(pending).finally(() => {
      settled = true;
    });
    let worst = 0;
    let polls = 0;
    while (!settled && polls < 50) {
      const t0 = performance.now();
      assert.equal((await fetch(`${server.url}/health`)).status, 200);
      worst = Math.max(worst, performance.now() - t0);
      polls++;
    }
    for (const res of await all) {
      assert.equal(res.status, 400);
      assert.equal(res.json.error.param, "prompt");
    }
    assert.ok(worst < 100, `/health took up to ${worst.toFixed(1)} ms over ${polls} polls`);
  });
});

describe("points 3-5: bodies and URLs", () => {
  const deep = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

  test("deep JSON nesting is a 400 on completions, chat, generate and detokenize", async () => {
    for (const path of ["/v1/completions", "/v1/chat/completions", "/generate", "/detokenize", "/tokenize"]) {
      for (const body of [
        `{"prompt": ${deep(100_000)}}`,
        `{"messages": [{"role": "user", "content": ${deep(70)}}]}`,
        `{"tokens": ${deep(5_000)}}`,
      ]) {
        const res = await postJson(`${server.url}${path}`, body, auth);
        assert.equal(res.status, 400, `${path}: ${JSON.stringify(res.json)}`);
        assert.equal(res.json.error.param, "body");
        assert.match(res.json.error.message, /nested more than 64 levels/);
      }
    }
    // 60 levels parse and then fail validation by name, not by stack.
    const res = await postJson(`${server.url}/v1/completions`, `{"prompt": ${deep(60)}}`, auth);
    assert.equal(res.status, 400);
    assert.equal(res.json.error.param, "prompt");
  });

  test("invalid UTF-8 and lone surrogates are refused naming the field; a valid pair passes", async () => {
    const prefix = Buffer.from('{"prompt": "abc');
    const badBytes = Buffer.concat([prefix, Buffer.from([0xff, 0xfe]), Buffer.from('", "max_tokens": 1}')]);
    const raw = await rawRequest(
      Buffer.concat([
        Buffer.from(
          `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${KEY}\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${badBytes.length}\r\n\r\n`,
        ),
        badBytes,
      ]),
    );
    assert.equal(raw.status, 400);
    assert.match(JSON.parse(raw.body).error.message, /not valid UTF-8 \(first bad byte at offset 15\)/);

    for (const [path, body, param] of [
      [
        "/v1/chat/completions",
        '{"messages": [{"role": "user", "content": "hi \\ud800"}]}',
        "messages[0].content",
      ],
      ["/v1/completions", '{"prompt": ["ok", "\\udfff x"]}', "prompt[1]"],
      ["/v1/completions", '{"prompt": "x", "stop": ["\\ud83d"]}', "stop[0]"],
      ["/generate", '{"prompt": "\\ud800\\ud800"}', "prompt"],
    ] as const) {
      const res = await postJson(`${server.url}${path}`, body, auth);
      assert.equal(res.status, 400, path);
      assert.equal(res.json.error.param, param);
      assert.match(res.json.error.message, /lone UTF-16 surrogate/);
    }
    const pair = await postJson(
      `${server.url}/v1/completions`,
      '{"prompt": "\\ud83d\\ude00", "max_tokens": 1}',
      auth,
    );
    assert.equal(pair.status, 200);
  });

  test("fastify's own errors leave as OpenAI bodies: bad URL, long parameter, wrong method (405)", async () => {
    const badUrl = await rawRequest(request("POST", "/v1/chat/completions%", auth, "{}"));
    assert.equal(badUrl.status, 400);
    assert.deepEqual(Object.keys(JSON.parse(badUrl.body).error).sort(), ["code", "message", "param", "type"]);
    assert.doesNotMatch(badUrl.body, /FST_/);

    const long = await rawRequest(request("GET", `/assets/${"a".repeat(300)}`, auth));
    assert.equal(long.status, 414);
    assert.equal(JSON.parse(long.body).error.code, "uri_too_long");

    for (const [method, path, allow] of [
      ["GET", "/v1/chat/completions", "POST"],
      ["DELETE", "/v1/models", "GET"],
      ["PUT", "/tokenize", "POST"],
      ["POST", "/health", "GET"],
    ] as const) {
      const res = await rawRequest(
        request(method, path, auth, method === "GET" || method === "DELETE" ? "" : "{}"),
      );
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.match(res.headers.allow ?? "", new RegExp(allow));
      const error = JSON.parse(res.body).error;
      assert.equal(error.code, "method_not_allowed");
      assert.equal(error.type, "invalid_request_error");
    }
    const unknown = await rawRequest(request("GET", "/v2/nothing", auth));
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.body).error.type, "not_found_error");
    const garbage = await rawRequest("GARBAGE\r\n\r\n");
    assert.equal(garbage.status, 400);
    assert.equal(JSON.parse(garbage.body).error.code, "bad_request");
  });
});

describe("point 6: slow, idle and too many connections", () => {
  test("headers, bodies and idle sockets are cut off at their deadlines; connections are capped", async () => {
    const strict = await startTestServer(llm, {
      connectionLimits: {
        headersTimeoutMs: 400,
        requestTimeoutMs: 800,
        keepAliveTimeoutMs: 300,
        idleTimeoutMs: 1_500,
        maxConnections: 4,
      },
    });
    const strictPort = Number(new URL(strict.url).port);
    try {
      // Slowloris: a request line and one header, then nothing.
      const slowHeaders = await rawRequest("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n", {
        port: strictPort,
      });
      assert.ok(slowHeaders.closedAfterMs < 1_500, `closed after ${slowHeaders.closedAfterMs} ms`);
      // A body that never finishes.
      const slowBody = await rawRequest(
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        { port: strictPort },
      );
      assert.ok(slowBody.closedAfterMs < 2_000, `closed after ${slowBody.closedAfterMs} ms`);
      assert.equal(slowBody.status, 408);
      // A kept-alive connection after its answer.
      const keptAlive = await rawRequest("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", {
        port: strictPort,
      });
      assert.equal(keptAlive.status, 200);
      assert.ok(keptAlive.closedAfterMs < 1_500, `closed after ${keptAlive.closedAfterMs} ms`);
      // Past the cap, new connections are closed at once.
      const idle = await Promise.all(
        Array.from(
          { length: 4 },
          () =>
            new Promise<net.Socket>((r) => {
              const s = net.connect(strictPort, "127.0.0.1", () => r(s));
              s.on("error", () => {});
            }),
        ),
      );
      await new Promise((r) => setTimeout(r, 50));
      const refused = await rawRequest("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", {
        port: strictPort,
        timeoutMs: 2_000,
      });
      assert.equal(refused.status, 0, "no answer past --max-connections");
      for (const s of idle) s.destroy();
    } finally {
      await strict.close();
    }
  });
});

describe("points 7-9: requests, ids, origins, hosts", () => {
  test("n beyond the room under --max-queue is a 429; temperature 1e999 names the field", async () => {
    const tooMany = await postJson(
      `${server.url}/v1/completions`,
      { prompt: "x", n: 5, max_tokens: 1 },
      auth,
    );
    assert.equal(tooMany.status, 429);
    assert.equal(tooMany.headers.get("retry-after"), "1");
    const fits = await postJson(`${server.url}/v1/completions`, { prompt: "x", n: 4, max_tokens: 1 }, auth);
    assert.equal(fits.status, 200);
    const inf = await postJson(`${server.url}/v1/completions`, '{"prompt": "x", "temperature": 1e999}', auth);
    assert.equal(inf.status, 400);
    assert.equal(inf.json.error.param, "temperature");
    assert.match(inf.json.error.message, /Infinity \(not a finite number\)/);
  });

  test("/v1/models shows the served name as root, never the folder", async () => {
    const res = await fetch(`${server.url}/v1/models`, { headers: auth });
    const card = ((await res.json()) as { data: { root: string }[] }).data[0]!;
    assert.equal(card.root, MODEL_NAME);
    assert.ok(!JSON.stringify(card).includes(llm.modelPath));
  });

  test("X-Request-Id is echoed when sane, made up otherwise, on answers, errors and streams", async () => {
    const echoed = await fetch(`${server.url}/health`, { headers: { "x-request-id": "trace-42" } });
    assert.equal(echoed.headers.get("x-request-id"), "trace-42");
    const made = await fetch(`${server.url}/health`, { headers: { "x-request-id": "bad id\twith tab" } });
    assert.match(made.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    const error = await postJson(
      `${server.url}/v1/completions`,
      { prompt: 42 },
      { ...auth, "x-request-id": "e-1" },
    );
    assert.equal(error.headers.get("x-request-id"), "e-1");
    const stream = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", "x-request-id": "s-1" },
      body: JSON.stringify({ prompt: "x", max_tokens: 2, stream: true }),
    });
    assert.equal(stream.headers.get("x-request-id"), "s-1");
    await readSse(stream);
  });

  test("a Host that is not this server is refused while listening on loopback (DNS rebinding)", async () => {
    const rebound = await rawRequest(
      "GET /health HTTP/1.1\r\nHost: evil.example:8000\r\nConnection: close\r\n\r\n",
    );
    assert.equal(rebound.status, 403);
    assert.equal(JSON.parse(rebound.body).error.code, "host_not_allowed");
    for (const host of ["localhost:8000", "127.0.0.1", "[::1]:1", "app.localhost"]) {
      const ok = await rawRequest(`GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assert.equal(ok.status, 200, host);
    }
    const open = await startTestServer(llm, { allowedHosts: ["chat.example"], allowedOrigins: ["*"] });
    try {
      const openPort = Number(new URL(open.url).port);
      const named = await rawRequest(
        "GET /health HTTP/1.1\r\nHost: chat.example\r\nConnection: close\r\n\r\n",
        {
          port: openPort,
        },
      );
      assert.equal(named.status, 200);
      const cors = await fetch(`${open.url}/v1/models`, { headers: { origin: "https://anything.example" } });
      assert.equal(cors.headers.get("access-control-allow-origin"), "*");
    } finally {
      await open.close();
    }
  });
});
