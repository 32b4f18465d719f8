/**
 * The chat page's settings and errors: every sampling field of the API is in the panel, is sent, is
 * accepted by the real server and is kept across reloads; a bad value is named before anything is sent;
 * a missing API key and a wrong one are told apart; a network error says what happened, keeps the typed
 * prompt, and errors are scrolled into view.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Page } from "playwright-core";
import { registerWebRoutes } from "../src/server/web/routes.js";
import { startTestServer } from "./server-harness.js";
import {
  ask,
  cannedReply,
  noPageErrors,
  onScreen,
  openPage,
  reload,
  setInput,
  skip,
  suiteRig,
  textOf,
} from "./web-harness.js";

const rig = suiteRig();

/** Waits for the error box to say `expected`; fails with what it does say. */
async function errorSays(page: Page, expected: string): Promise<void> {
  try {
    await page.locator("#error-text", { hasText: expected }).waitFor({ timeout: 10_000 });
  } catch {
    assert.fail(
      `the error box says ${JSON.stringify(await textOf(page.locator("#error-text")))}, not "${expected}"`,
    );
  }
}

/** Records each chat request's body and lets it through to the server. */
async function recordRequests(page: Page): Promise<Record<string, unknown>[]> {
  const bodies: Record<string, unknown>[] = [];
  await page.route("**/v1/chat/completions", async (route) => {
    bodies.push(JSON.parse(route.request().postData() ?? "{}"));
    await route.continue();
  });
  return bodies;
}

test("every sampling field is sent as the API's field, the server takes them, and they survive a reload", {
  skip,
}, async () => {
  const { context, page, errors } = await openPage(rig());
  const bodies = await recordRequests(page);
  assert.equal(await page.locator("#settings").isVisible(), true, "the panel is open on a wide screen");
  const values: [string, string][] = [
    ["#temperature", "0.6"],
    ["#top-p", "0.9"],
    ["#top-k", "20"],
    ["#min-p", "0.05"],
    ["#repetition-penalty", "1.1"],
    ["#presence-penalty", "0.2"],
    ["#frequency-penalty", "0.3"],
    ["#seed", "7"],
    ["#max-tokens", "8"],
    ["#min-tokens", "2"],
    ["#stop-strings", "END\n\\n\\n"],
    ["#logit-bias", '{"13": -5}'],
  ];
  for (const [selector, value] of values) await setInput(page, selector, value);
  await page.check("#ignore-eos");
  await page.fill("#system-prompt", "Be brief.");
  const first = await textOf((await ask(page, "Tell me a fortune.")).locator(".body"));

  const sent = bodies[0]!;
  assert.deepEqual(
    {
      temperature: sent.temperature,
      top_p: sent.top_p,
      top_k: sent.top_k,
      min_p: sent.min_p,
      repetition_penalty: sent.repetition_penalty,
      presence_penalty: sent.presence_penalty,
      frequency_penalty: sent.frequency_penalty,
      seed: sent.seed,
      max_tokens: sent.max_tokens,
      min_tokens: sent.min_tokens,
      stop: sent.stop,
      ignore_eos: sent.ignore_eos,
      logit_bias: sent.logit_bias,
      messages: sent.messages,
    },
    {
      temperature: 0.6,
      top_p: 0.9,
      top_k: 20,
      min_p: 0.05,
      repetition_penalty: 1.1,
      presence_penalty: 0.2,
      frequency_penalty: 0.3,
      seed: 7,
      max_tokens: 8,
      min_tokens: 2,
      stop: ["END", "\n\n"],
      ignore_eos: true,
      logit_bias: { "13": -5 },
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Tell me a fortune." },
      ],
    },
  );
  const answer = page.locator("article.message.assistant").first();
  assert.equal(await answer.getAttribute("data-completion-tokens"), "8", "ignore_eos ran to max tokens");
  assert.equal(await answer.getAttribute("data-finish-reason"), "length");

  // The seed makes sampling repeat: regenerating gives the same text.
  await answer.locator(".regenerate-message").click();
  await page.locator('article.message.assistant[data-state="done"]').waitFor();
  assert.equal(
    await textOf(page.locator("article.message.assistant .body")),
    first,
    "same seed, same answer",
  );

  await reload(page);
  for (const [selector, value] of values) assert.equal(await page.inputValue(selector), value, selector);
  assert.equal(await page.isChecked("#ignore-eos"), true);
  assert.equal(await page.inputValue("#system-prompt"), "Be brief.");

  // Reset empties the sampling fields (server defaults), not the system prompt.
  await page.click("#reset-settings");
  for (const [selector] of values) assert.equal(await page.inputValue(selector), "", selector);
  assert.equal(await page.isChecked("#ignore-eos"), false);
  await reload(page);
  assert.equal(await page.inputValue("#top-k"), "", "the reset was saved");
  noPageErrors(errors);
  await context.close();
});

/** A conversation long enough to scroll, then scrolled to its top as a reader would. */
async function longConversationScrolledUp(page: Page): Promise<void> {
  await cannedReply(
    page,
    Array.from({ length: 40 }, (_, i) => `Line ${i + 1} of a long answer.`).join("\n\n"),
  );
  await ask(page, "Write a long answer.");
  await page.unroute("**/v1/chat/completions");
  await page.locator("#messages").evaluate((box) => {
    box.scrollTop = 0;
  });
}

test("a bad setting is named before anything is sent; the prompt stays and the error is scrolled into view", {
  skip,
}, async () => {
  const { context, page, errors } = await openPage(rig());
  await longConversationScrolledUp(page);
  const bodies = await recordRequests(page);
  await setInput(page, "#top-k", "2.5");
  await page.fill("#prompt", "Is this sent?");
  await page.press("#prompt", "Enter");
  const error = page.locator("#error");
  await error.waitFor();
  assert.equal(await textOf(page.locator("#error-text")), "Settings: Top-k: '2.5' is not a whole number");
  assert.ok(await onScreen(error), "the error is in view although the reader had scrolled up");
  assert.equal(await page.inputValue("#prompt"), "Is this sent?", "the prompt is kept");
  assert.equal(await page.getAttribute("#top-k", "aria-invalid"), "true", "the field is marked");
  assert.equal(bodies.length, 0, "nothing was sent");
  assert.equal(await page.locator("article.message").count(), 2);
  noPageErrors(errors);
  await context.close();
});

test("a network error says what happened, keeps the typed prompt, is in view, and Send works again after", {
  skip,
}, async () => {
  const { context, page, errors } = await openPage(rig());
  await setInput(page, "#max-tokens", "4");
  await longConversationScrolledUp(page);
  await page.route("**/v1/chat/completions", (route) => route.abort("connectionrefused"));
  await page.fill("#prompt", "Are you there?");
  await page.click("#send");
  await page.locator("#error").waitFor();
  const message = await textOf(page.locator("#error-text"));
  assert.match(
    message,
    /^Network error talking to the server at http:\/\/127\.0\.0\.1:\d+: the connection failed \(.+\)\. Is `awq serve` still running\?$/,
  );
  assert.ok(await onScreen(page.locator("#error")), "the error is in view");
  assert.equal(await page.inputValue("#prompt"), "Are you there?", "the typed prompt is back in the box");
  assert.equal(await page.locator("article.message").count(), 2, "the unsent question is not in the chat");
  await reload(page);
  assert.equal(await page.locator("article.message").count(), 2, "nor in the saved chat");

  // The server is back: the same prompt goes through.
  await page.unroute("**/v1/chat/completions");
  await page.fill("#prompt", "Are you there?");
  await page.click("#send");
  try {
    await page.locator('article.message.assistant[data-state="done"]').nth(1).waitFor({ timeout: 20_000 });
  } catch {
    assert.fail(`no answer; the page shows ${JSON.stringify(await textOf(page.locator("#messages")))}`);
  }
  assert.equal(await page.locator("#error").isVisible(), false, "the old error is gone");
  noPageErrors(errors.filter((e) => !/Failed to load resource/.test(e)));
  await context.close();
});

test("a missing API key and a wrong one are told apart, before and after sending", { skip }, async () => {
  const keyed = await startTestServer(rig().llm, { registerWebRoutes, apiKeys: ["right-key"] });
  try {
    const { context, page, errors } = await openPage(rig(), { url: `${keyed.url}/` });
    const hint = page.locator("#api-key-hint");
    const auth: string[] = [];
    page.on("request", (r) => auth.push(`${new URL(r.url()).pathname} ${r.headers().authorization ?? "-"}`));
    page.on("response", (r) => auth.push(`${new URL(r.url()).pathname} -> ${r.status()}`));
    await page.locator("#api-key-row").waitFor({ state: "visible" });
    await page.locator("#api-key-hint", { hasText: "This server needs an API key" }).waitFor();

    // Sending without a key: the error says the key is missing and the prompt stays.
    await page.fill("#prompt", "Hello?");
    await page.press("#prompt", "Enter");
    await errorSays(page, "This server needs an API key: enter it in Settings.");
    assert.equal(await page.inputValue("#prompt"), "Hello?");

    // A wrong key: said so, differently.
    await page.fill("#api-key", "wrong-key");
    await page.locator("#api-key").dispatchEvent("change");
    await page
      .locator("#api-key-hint", { hasText: "The server refused the API key: it is wrong." })
      .waitFor();
    await page.press("#prompt", "Enter");
    await errorSays(page, "The server refused the API key: it is wrong. Correct it in Settings.").catch(
      (err) => {
        throw new Error(`${err.message}; requests: ${auth.join(", ")}`);
      },
    );
    assert.equal(await page.inputValue("#prompt"), "Hello?");
    assert.equal(await page.locator("article.message").count(), 0);

    // The right key: the model's name shows and the chat works.
    await page.fill("#api-key", "right-key");
    await page.locator("#api-key").dispatchEvent("change");
    await page.locator("#model-name", { hasText: "tiny-chat" }).waitFor();
    assert.equal(await textOf(hint), "");
    await setInput(page, "#max-tokens", "4");
    await page.press("#prompt", "Enter");
    await page.locator('article.message.assistant[data-state="done"]').waitFor({ timeout: 20_000 });
    noPageErrors(errors.filter((e) => !/status of 401/.test(e)));
    await context.close();
  } finally {
    await keyed.close();
  }
});
