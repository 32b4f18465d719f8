/**
 * The chat page at `/` in headless Chromium against a real server on the demo model (CPU backend): a streamed
 * answer with timing, stop mid-answer (the engine's running count returns to 0), hostile model text rendered
 * inert, the API-key flow after a 401, phone width, and a screenshot under test-output/.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import type { LLM } from "../src/llm.js";
import { registerWebRoutes } from "../src/server/web/routes.js";
import { loadTestModel, repoRoot, startTestServer, type TestServer } from "./server-harness.js";
import { CHROMIUM, CHROMIUM_ARGS, skip } from "./web-harness.js";

const outputDir = path.join(repoRoot, "test-output");

let llm: LLM;
let server: TestServer;
let context: BrowserContext;
let page: Page;
let profileDir: string;
/** Every URL the browser asked for: the page must not reach beyond our server. */
const requested: string[] = [];

before(async () => {
  if (skip) return;
  llm = await loadTestModel({ maxModelLen: 1024 });
  server = await startTestServer(llm, { registerWebRoutes });
  profileDir = await mkdtemp(path.join(tmpdir(), "awq-web-test-"));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 800 },
  });
  context.on("request", (request) => requested.push(request.url()));
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await context?.close();
  await server?.close();
  await llm?.dispose();
  if (profileDir) await rm(profileDir, { recursive: true, force: true });
});

async function runningRequests(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const match = /^vllm:num_requests_running(?:\{[^}]*\})? (\S+)$/m.exec(text);
  assert.ok(match, "/metrics reports vllm:num_requests_running");
  return Number(match[1]);
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function textOf(locator: Locator): Promise<string> {
  return (await locator.textContent()) ?? "";
}

async function setInput(selector: string, value: string): Promise<void> {
  await page.locator(selector).evaluate((el, v) => {
    (el as HTMLInputElement).value = v;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

test("the page loads from our server only and answers a message as a stream, with timing", {
  skip,
}, async () => {
  const response = await page.goto(`${server.url}/`);
  assert.equal(response?.status(), 200);
  assert.match(response!.headers()["content-security-policy"] ?? "", /script-src 'self'/);
  await page.locator("#model-name", { hasText: "tiny-chat" }).waitFor();
  assert.equal(await page.locator("#api-key-row").isHidden(), true, "no key field when none is needed");

  await page.fill("#system-prompt", "You are a helpful assistant.");
  await setInput("#temperature", "0");
  await setInput("#max-tokens", "24");
  await page.fill("#prompt", "Tell me a fortune.");
  await page.press("#prompt", "Enter");
  const answer = page.locator("article.message.assistant").last();
  await answer.and(page.locator('[data-state="done"]')).waitFor({ timeout: 20_000 });
  const text = (await textOf(answer.locator(".body"))).trim();
  assert.ok(text.length > 0, "the answer has text");
  const completionTokens = Number(await answer.getAttribute("data-completion-tokens"));
  assert.ok(completionTokens > 0 && completionTokens <= 24, `completion tokens ${completionTokens}`);
  const ttft = Number(await answer.getAttribute("data-ttft-ms"));
  assert.ok(ttft > 0 && ttft < 20_000, `TTFT ${ttft} ms`);
  assert.match(await textOf(answer.locator(".stats")), /TTFT \d+ ms/);
  if (completionTokens > 1) assert.match(await textOf(answer.locator(".stats")), /[\d.]+ tokens\/s/);
  assert.equal(await textOf(page.locator("article.message.user .body").first()), "Tell me a fortune.");

  const origin = new URL(server.url).origin;
  const foreign = requested.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith("data:"));
  assert.deepEqual(foreign, [], "the page fetched nothing from anywhere else");
});

test("stop mid-answer closes the request and the server's running count returns to 0", { skip }, async () => {
  // ignore_eos keeps the tiny model talking, so there is an answer in progress to stop.
  let sent: { messages?: { role: string; content: string }[]; [field: string]: unknown } = {};
  await page.route("**/v1/chat/completions", async (route) => {
    sent = JSON.parse(route.request().postData() ?? "{}");
    await route.continue({ postData: JSON.stringify({ ...sent, ignore_eos: true }) });
  });
  await setInput("#temperature", "0.8");
  await setInput("#max-tokens", "900");
  await page.fill("#prompt", "Tell me a long story.");
  await page.click("#send");
  const answer = page.locator("article.message.assistant").last();
  // Text on screen while the answer is still streaming: it arrives token by token, not at the end.
  await waitFor(
    async () =>
      (await answer.getAttribute("data-state")) === "streaming" &&
      (await textOf(answer.locator(".body"))).trim().length > 20,
    "streamed text to appear",
  );
  assert.equal(await runningRequests(), 1, "the engine is generating the answer");
  // Multi-turn: the first exchange and the system prompt travel with the new question.
  assert.deepEqual(
    sent.messages?.map((m) => m.role),
    ["system", "user", "assistant", "user"],
  );
  assert.equal(sent.messages?.[3]?.content, "Tell me a long story.");
  assert.deepEqual(
    [sent.stream, sent.stream_options, sent.temperature, sent.max_tokens],
    [true, { include_usage: true }, 0.8, 900],
  );
  const before = (await textOf(answer.locator(".body"))).length;
  await waitFor(async () => (await textOf(answer.locator(".body"))).length > before, "more streamed text");
  assert.equal(await page.locator("#stop").isVisible(), true);
  await page.click("#stop");
  await answer.and(page.locator('[data-state="stopped"]')).waitFor();
  await waitFor(async () => (await runningRequests()) === 0, "vllm:num_requests_running to return to 0");
  assert.equal(llm.engine.stats().running, 0);
  const generated = Number(await answer.getAttribute("data-completion-tokens"));
  assert.ok(generated > 0 && generated < 900, `stopped after ${generated} of 900 tokens`);
  assert.match(await textOf(answer.locator(".stats")), /stopped/);
  assert.equal(await page.locator("#send").isVisible(), true, "ready for the next message");
  await page.unroute("**/v1/chat/completions");
});

const HOSTILE_REPLY = [
  "<script>window.__pwned = 'script'</script>",
  "",
  "<img src=x onerror=\"window.__pwned = 'img'\">",
  "",
  "**<img src=x onerror=\"window.__pwned = 'bold'\">** and `<img src=x onerror=\"window.__pwned = 'code'\">`",
  "",
  "[click me](javascript:window.__pwned='link') [<img src=x onerror=\"window.__pwned='label'\">](https://example.org/)",
  "",
  "```html",
  "<svg onload=\"window.__pwned = 'svg'\"></svg>",
  "```",
].join("\n");

function sseBody(text: string): string {
  const chunk = (delta: unknown, finish: string | null) =>
    `data: ${JSON.stringify({ id: "x", object: "chat.completion.chunk", created: 0, model: "tiny-chat", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  // Split mid-tag so the renderer also sees incomplete markup while streaming.
  const pieces = text.match(/[\s\S]{1,7}/g) ?? [];
  return `${chunk({ role: "assistant", content: "" }, null)}${pieces.map((p) => chunk({ content: p }, null)).join("")}${chunk({}, "stop")}data: [DONE]\n\n`;
}

test("a reply with <script> and <img onerror> renders as inert text in the chat", { skip }, async () => {
  await page.route("**/v1/chat/completions", (route) =>
    route.fulfill({ status: 200, contentType: "text/event-stream", body: sseBody(HOSTILE_REPLY) }),
  );
  await page.fill("#prompt", "Say something nasty.");
  await page.click("#send");
  const answer = page.locator("article.message.assistant").last();
  await answer.and(page.locator('[data-state="done"]')).waitFor();
  await page.unroute("**/v1/chat/completions");
  await page.waitForTimeout(300); // time for an image error event, had an <img> been made
  const found = await page.evaluate(() => ({
    pwned: (window as { __pwned?: string }).__pwned ?? null,
    images: document.querySelectorAll("#messages img, #messages svg, #messages script").length,
    handlers: [...document.querySelectorAll("#messages *")].filter((el) =>
      [...el.attributes].some((a) => a.name.startsWith("on")),
    ).length,
    hrefs: [...document.querySelectorAll("#messages a")].map((a) => a.getAttribute("href")),
  }));
  assert.deepEqual(found, { pwned: null, images: 0, handlers: 0, hrefs: ["https://example.org/"] });
  const text = await textOf(answer.locator(".body"));
  assert.ok(text.includes("<script>window.__pwned = 'script'</script>"), "the markup is shown as text");
  assert.ok(text.includes("<svg onload="), "code blocks keep their text");
  assert.equal(await answer.locator("strong").count(), 1);
  assert.equal(await answer.locator("pre code.language-html").count(), 1);
});

test("the renderer builds real elements for Markdown and leaves hostile text inert without our CSP", {
  skip,
}, async () => {
  // The chat page's CSP would block inline handlers anyway; this page has none, so only the renderer
  // stands between the text and execution. The control proves the page would notice an execution.
  const probeUrl = `${server.url}/renderer-probe`;
  await page.route(probeUrl, (route) =>
    route.fulfill({
      status: 200,
      contentType: "text/html",
      body: "<!doctype html><title>probe</title><div id=out></div>",
    }),
  );
  await page.goto(probeUrl);
  const result = await page.evaluate(async (reply) => {
    const rendererUrl = "/assets/markdown.js";
    const { renderMarkdown } = (await import(rendererUrl)) as typeof import("../src/server/web/markdown.js");
    const out = document.getElementById("out")!;
    out.append(renderMarkdown(document, reply));
    const control = document.createElement("div");
    control.innerHTML = '<img src=x onerror="window.__control = 1">';
    document.body.append(control);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const w = window as { __pwned?: string; __control?: number };
    return {
      pwned: w.__pwned ?? null,
      control: w.__control ?? null,
      elements: [...out.querySelectorAll("*")].map((el) => el.tagName.toLowerCase()).sort(),
    };
  }, HOSTILE_REPLY);
  const rich = await page.evaluate(async (reply) => {
    const rendererUrl = "/assets/markdown.js";
    const { renderMarkdown } = (await import(rendererUrl)) as typeof import("../src/server/web/markdown.js");
    const out = document.createElement("div");
    out.append(renderMarkdown(document, reply));
    const q = (selector: string) => [...out.querySelectorAll(selector)].map((el) => el.textContent);
    return {
      heading: q("h3"),
      items: q("ol > li"),
      start: out.querySelector("ol")?.getAttribute("start"),
      code: q("pre > code.language-js"),
      inline: q("p code"),
      strong: q("strong"),
      em: q("em"),
      link: [...out.querySelectorAll("a")].map((a) => [a.getAttribute("href"), a.rel, a.textContent]),
    };
  }, "# Title\n\nSome **bold**, *it* and `x < y`.\n\n2. two\n3. three\n\n```js\nlet a = 1;\n```\n\n[docs](https://example.org/d)");
  assert.deepEqual(rich, {
    heading: ["Title"],
    items: ["two", "three"],
    start: "2",
    code: ["let a = 1;"],
    inline: ["x < y"],
    strong: ["bold"],
    em: ["it"],
    link: [["https://example.org/d", "noopener noreferrer nofollow", "docs"]],
  });
  await page.unroute(probeUrl);
  assert.equal(result.control, 1, "the probe detects an executed handler");
  assert.equal(result.pwned, null, "nothing in the reply executed");
  // The code block's frame: a div with the language (span) and the Copy button.
  assert.deepEqual(
    [...new Set(result.elements)],
    ["a", "button", "code", "div", "p", "pre", "span", "strong"],
  );
});

test("at phone width the page fits and still works; screenshot saved", { skip }, async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${server.url}/`);
  await page.locator("body[data-ready]").waitFor();
  // The earlier tests' chat is saved and comes back on load: start a new one.
  assert.equal(await page.locator("#chat-list li").count(), 1, "the earlier chat is in the list");
  await page.click("#new-chat");
  await page.fill("#prompt", "Hello!");
  await setInput("#max-tokens", "16");
  await page.press("#prompt", "Enter");
  await page.locator('article.message.assistant[data-state="done"]').waitFor({ timeout: 20_000 });
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.equal(fits, true, "no horizontal scrolling at 390 px");
  assert.equal(await page.locator("#settings").isVisible(), false, "settings fold away on a phone");
  await page.click("#toggle-settings");
  assert.equal(await page.locator("#system-prompt").isVisible(), true);
  await mkdir(outputDir, { recursive: true });
  await page.screenshot({ path: path.join(outputDir, "web-chat-page-phone.png") });
  await page.setViewportSize({ width: 1100, height: 800 });
});

test("with --api-key the page learns from a 401 to ask for the key, then chats", { skip }, async () => {
  const keyed = await startTestServer(llm, { registerWebRoutes, apiKeys: ["page-test-key"] });
  try {
    await page.goto(`${keyed.url}/`);
    await page.locator("#api-key-row").waitFor({ state: "visible" });
    assert.match(await textOf(page.locator("#api-key-hint")), /API key/);
    await page.fill("#api-key", "page-test-key");
    await page.locator("#api-key").dispatchEvent("change");
    await page.locator("#model-name", { hasText: "tiny-chat" }).waitFor();
    await setInput("#max-tokens", "12");
    await page.fill("#prompt", "What does the fortune cookie say?");
    await page.press("#prompt", "Enter");
    await page.locator('article.message.assistant[data-state="done"]').waitFor({ timeout: 20_000 });
    await mkdir(outputDir, { recursive: true });
    await page.screenshot({ path: path.join(outputDir, "web-chat-page.png"), fullPage: true });
  } finally {
    await keyed.close();
  }
});
