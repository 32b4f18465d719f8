/**
 * The chat page at phone width (390x844, a touch screen): the header fits on one line, the message box
 * stays on screen with the settings open, Shift+Enter adds a line (and on a touch keyboard the return key
 * always does: Send sends), and the chat list opens as a drawer. Screenshots of the chat list and of the
 * settings on a phone, and of the chat list at desktop width.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Page } from "playwright-core";
import {
  cannedReply,
  noPageErrors,
  onScreen,
  openChat,
  openPage,
  RICH_REPLY,
  screenshot,
  skip,
  suiteRig,
} from "./web-harness.js";

const rig = suiteRig();

/** Sends `text` with the Send button (a phone's way) and waits for the canned answer. */
async function sendByButton(page: Page, text: string): Promise<void> {
  const before = await page.locator("article.message.assistant").count();
  await page.fill("#prompt", text);
  await page.click("#send");
  await page.locator('article.message.assistant[data-state="done"]').nth(before).waitFor();
}

test("the header is one line at 390 px and the message box stays on screen with the settings open", {
  skip,
}, async () => {
  const { context, page, errors } = await openPage(rig(), { phone: true });
  const header = await page.locator("header.topbar").evaluate((bar) => {
    const boxes = [...bar.children].map((el) => el.getBoundingClientRect()).filter((r) => r.width > 0);
    return {
      height: bar.getBoundingClientRect().height,
      overflow: bar.scrollWidth - bar.clientWidth,
      tops: boxes.map((r) => Math.round(r.top + r.height / 2)),
      right: Math.max(...boxes.map((r) => r.right)),
    };
  });
  assert.ok(header.height < 60, `one line: the header is ${header.height} px high`);
  assert.equal(header.overflow, 0, "nothing sticks out of the header");
  assert.ok(
    Math.max(...header.tops) - Math.min(...header.tops) <= 2,
    `every item on the same line (centres ${header.tops})`,
  );
  assert.ok(header.right <= 390);
  for (const id of ["#toggle-chats", "#new-chat", "#toggle-settings"])
    assert.ok(await onScreen(page.locator(id)), `${id} is on screen`);

  assert.equal(await page.locator("#settings").isVisible(), false, "settings start folded away on a phone");
  await page.click("#toggle-settings");
  assert.equal(await page.locator("#settings").isVisible(), true);
  assert.ok(await onScreen(page.locator("#prompt")), "the message box is on screen with the settings open");
  assert.ok(await onScreen(page.locator("#send")), "and so is Send");
  // Deep in the panel too: scrolling the settings does not push the message box away.
  await page.locator("#json-schema").scrollIntoViewIfNeeded();
  await page.locator("#json-schema").focus();
  assert.ok(await onScreen(page.locator("#json-schema")));
  assert.ok(await onScreen(page.locator("#prompt")));
  // And it works from there.
  await cannedReply(page, RICH_REPLY);
  await sendByButton(page, "Solve a quadratic, with code and a table.");
  assert.ok(await onScreen(page.locator("#prompt")));
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(fits, "no sideways scrolling");
  await page.locator("#settings").evaluate((panel) => {
    panel.scrollTop = 0;
  });
  await screenshot(page, "chat-settings-phone.png");
  noPageErrors(errors);
  await context.close();
});

test("Shift+Enter adds a line and Enter sends; on a touch keyboard return adds a line and Send sends", {
  skip,
}, async () => {
  const desktop = await openPage(rig());
  await cannedReply(desktop.page, "Fine.");
  await desktop.page.locator("#prompt").pressSequentially("first line");
  await desktop.page.keyboard.press("Shift+Enter");
  await desktop.page.keyboard.type("second line");
  assert.equal(await desktop.page.inputValue("#prompt"), "first line\nsecond line");
  assert.equal(await desktop.page.locator("article.message").count(), 0, "Shift+Enter did not send");
  await desktop.page.keyboard.press("Enter");
  await desktop.page.locator('article.message.assistant[data-state="done"]').waitFor();
  assert.equal(
    await desktop.page.locator("article.message.user .body").textContent(),
    "first line\nsecond line",
  );
  assert.equal(await desktop.page.inputValue("#prompt"), "");
  noPageErrors(desktop.errors);
  await desktop.context.close();

  const phone = await openPage(rig(), { phone: true });
  assert.equal(
    await phone.page.evaluate(() => matchMedia("(pointer: coarse)").matches),
    true,
    "a touch screen",
  );
  assert.equal(
    await phone.page.getAttribute("#prompt", "enterkeyhint"),
    "enter",
    "the keyboard shows a return key",
  );
  await cannedReply(phone.page, "Fine.");
  await phone.page.locator("#prompt").tap();
  await phone.page.keyboard.type("one");
  await phone.page.keyboard.press("Enter");
  await phone.page.keyboard.type("two");
  await phone.page.keyboard.press("Shift+Enter");
  await phone.page.keyboard.type("three");
  assert.equal(await phone.page.inputValue("#prompt"), "one\ntwo\nthree");
  assert.equal(await phone.page.locator("article.message").count(), 0, "return did not send");
  await phone.page.locator("#send").tap();
  await phone.page.locator('article.message.assistant[data-state="done"]').waitFor();
  assert.equal(await phone.page.locator("article.message.user .body").textContent(), "one\ntwo\nthree");
  noPageErrors(phone.errors);
  await phone.context.close();
});

test("the chat list: a drawer on a phone that closes on a pick, a side column on a desktop", {
  skip,
}, async () => {
  const { context, page, errors } = await openPage(rig(), { phone: true });
  await cannedReply(page, RICH_REPLY);
  for (const question of ["Solve a quadratic", "Sort a list in Python", "What is a KV cache?"]) {
    await page.click("#new-chat");
    await sendByButton(page, question);
  }
  assert.equal(await page.locator("#chats").isVisible(), false, "the list is folded away");
  await page.click("#toggle-chats");
  assert.equal(await page.locator("#chats").isVisible(), true);
  assert.deepEqual(await page.locator("#chat-list .chat-title").allTextContents(), [
    "What is a KV cache?",
    "Sort a list in Python",
    "Solve a quadratic",
  ]);
  assert.ok(
    await onScreen(page.locator("#chat-list li").first().locator(".chat-delete")),
    "Delete can be tapped",
  );
  await screenshot(page, "chat-list-phone.png");
  await openChat(page, "Solve a quadratic", true);
  await page.locator("#chats").waitFor({ state: "hidden" }); // picking a chat closes the drawer
  assert.equal(await page.locator("article.message.user .body").textContent(), "Solve a quadratic");
  noPageErrors(errors);
  await context.close();

  const desktop = await openPage(rig());
  await cannedReply(desktop.page, RICH_REPLY);
  for (const question of ["Solve a quadratic", "Sort a list in Python", "What is a KV cache?"]) {
    await desktop.page.click("#new-chat");
    await sendByButton(desktop.page, question);
  }
  assert.equal(
    await desktop.page.locator("#toggle-chats").isVisible(),
    false,
    "no drawer button on a desktop",
  );
  assert.equal(await desktop.page.locator("#chat-list li").count(), 3);
  await openChat(desktop.page, "Solve a quadratic");
  await desktop.page.click("#toggle-settings");
  await screenshot(desktop.page, "chat-list-desktop.png");
  noPageErrors(desktop.errors);
  await desktop.context.close();
});
