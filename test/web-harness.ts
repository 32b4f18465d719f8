/**
 * Shared setup of the chat page suites (test/web-*.test.ts): headless Chromium from Debian's package, the
 * demo model behind a real server with the page's routes, canned streamed replies for rendering tests,
 * and screenshots. (Not a test file itself.)
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { after, before } from "node:test";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import type { LLM } from "../src/llm.js";
import type { ServerOptions } from "../src/server/app.js";
import { registerWebRoutes } from "../src/server/web/routes.js";
import { loadTestModel, repoRoot, startTestServer, type TestServer } from "./server-harness.js";

export const CHROMIUM = "/usr/bin/chromium";
export const skip = existsSync(CHROMIUM) ? false : `needs ${CHROMIUM} (Debian: apt-get install -y chromium)`;
/** Screenshots go here (AWQ_SCREENSHOT_DIR, else test-output/ in the checkout). */
export const screenshotDir = process.env.AWQ_SCREENSHOT_DIR ?? path.join(repoRoot, "test-output");

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** Chromium flags of every suite: headless, no network of its own. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface WebRig {
  llm: LLM;
  server: TestServer;
  browser: Browser;
  close(): Promise<void>;
}

/**
 * One rig for the calling suite: started in its `before`, closed in its `after` (nothing when Chromium is missing);
 * the returned getter gives it inside the tests.
 */
export function suiteRig(serverOpts: Partial<ServerOptions> = {}): () => WebRig {
  let rig: WebRig | undefined;
  before(async () => {
    if (!skip) rig = await startWebRig(serverOpts);
  });
  after(async () => {
    await rig?.close();
  });
  return () => {
    if (rig === undefined)
      throw new Error("the web rig is not started (Chromium missing, or used outside a test)");
    return rig;
  };
}

/** The demo model, a server with the chat page, and a browser (one per suite). */
export async function startWebRig(serverOpts: Partial<ServerOptions> = {}): Promise<WebRig> {
  const llm = await loadTestModel({ maxModelLen: 1024 });
  const server = await startTestServer(llm, { registerWebRoutes, ...serverOpts });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  return {
    llm,
    server,
    browser,
    close: async () => {
      await browser.close();
      await server.close();
      await llm.dispose();
    },
  };
}

/**
 * A fresh browser context (its own IndexedDB and localStorage) on the page; page errors fail the test.
 * `phone` emulates a touch phone at 390x844.
 */
export async function openPage(
  rig: WebRig,
  opts: { phone?: boolean; url?: string } = {},
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await rig.browser.newContext({
    viewport: opts.phone ? PHONE : DESKTOP,
    ...(opts.phone ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  await page.goto(opts.url ?? `${rig.server.url}/`);
  await page.locator("body[data-ready]").waitFor();
  return { context, page, errors };
}

/** A streamed chat completion body that says `text`, cut into small pieces (mid-token, mid-markup). */
export function sseReply(text: string, pieceChars = 7): string {
  const chunk = (delta: unknown, finish: string | null) =>
    `data: ${JSON.stringify({ id: "x", object: "chat.completion.chunk", created: 0, model: "tiny-chat", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const pieces = text.match(new RegExp(`[\\s\\S]{1,${pieceChars}}`, "g")) ?? [];
  const usage = `data: ${JSON.stringify({ id: "x", object: "chat.completion.chunk", created: 0, model: "tiny-chat", choices: [], usage: { prompt_tokens: 5, completion_tokens: pieces.length, total_tokens: 5 + pieces.length } })}\n\n`;
  return `${chunk({ role: "assistant", content: "" }, null)}${pieces.map((p) => chunk({ content: p }, null)).join("")}${chunk({}, "stop")}${usage}data: [DONE]\n\n`;
}

/** Makes the page's chat requests answer `text` (canned: for what the tiny model cannot write). */
export async function cannedReply(page: Page, text: string): Promise<void> {
  await page.route("**/v1/chat/completions", (route) =>
    route.fulfill({ status: 200, contentType: "text/event-stream", body: sseReply(text) }),
  );
}

export async function setInput(page: Page, selector: string, value: string): Promise<void> {
  await page.locator(selector).evaluate((el, v) => {
    (el as HTMLInputElement).value = v;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

export async function textOf(locator: Locator): Promise<string> {
  return (await locator.textContent()) ?? "";
}

/** Types `text` into the message box and sends it; waits for the answer to finish. Returns the answer. */
export async function ask(page: Page, text: string, timeout = 20_000): Promise<Locator> {
  const before = await page.locator("article.message.assistant").count();
  await page.fill("#prompt", text);
  await page.press("#prompt", "Enter");
  const answer = page.locator("article.message.assistant").nth(before);
  await answer.and(page.locator('[data-state="done"]')).waitFor({ timeout });
  return answer;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, name);
  await page.screenshot({ path: file });
  return file;
}

/** Whether `locator`'s box lies inside the window (fully). */
export async function onScreen(locator: Locator): Promise<boolean> {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    return (
      r.width > 0 &&
      r.height > 0 &&
      r.top >= 0 &&
      r.left >= 0 &&
      r.bottom <= innerHeight &&
      r.right <= innerWidth
    );
  });
}

export function noPageErrors(errors: string[]): void {
  assert.deepEqual(errors, [], "no script errors on the page");
}

/** A reply with what a model writes and the renderer must handle: display and inline TeX, code, a table, prices. */
export const RICH_REPLY = [
  "Here is the **quadratic formula** and a helper:",
  "",
  "$$x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}$$",
  "",
  "```python",
  "import math",
  "",
  "def roots(a: float, b: float, c: float) -> tuple[float, float]:",
  '    """Both roots of a*x^2 + b*x + c."""',
  "    d = math.sqrt(b * b - 4 * a * c)",
  "    return (-b + d) / (2 * a), (-b - d) / (2 * a)",
  "```",
  "",
  "| a | b | c | roots |",
  "|---|---|--:|:-----:|",
  "| 1 | -3 | 2 | 1, 2 |",
  "| 1 | 2 | 1 | -1 |",
  "",
  "The discriminant $\\Delta = b^2 - 4ac$ tells how many real roots there are; it costs $5 or $10 to print.",
].join("\n");

/** Opens the saved chat titled `title` from the list (click, or tap on a touch screen) and waits until it shows. */
export async function openChat(page: Page, title: string, tap = false): Promise<void> {
  const item = page.locator("#chat-list .chat-open", { hasText: title });
  await (tap ? item.tap() : item.click());
  // attached, not visible: on a phone the drawer closes on the pick.
  await page
    .locator('#chat-list li[aria-current="true"] .chat-title', { hasText: title })
    .waitFor({ state: "attached" });
}

/** Reloads the page once its saves are done (body[data-saving] clear), and waits for it to be ready. */
export async function reload(page: Page): Promise<void> {
  await page.locator("body:not([data-saving])").waitFor({ state: "attached" });
  await page.reload();
  await page.locator("body[data-ready]").waitFor();
}
