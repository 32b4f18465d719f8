/**
 * The chat page keeps conversations: they survive reloads (IndexedDB), the chat list opens, searches,
 * renames and deletes them, they export to a JSON file and import from one; and each message can be copied, edited and
 * sent again, regenerated or deleted. Against the demo model on a real server (short greedy answers).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import type { Page } from "playwright-core";
import {
  ask,
  noPageErrors,
  openChat,
  openPage,
  reload,
  setInput,
  skip,
  suiteRig,
  textOf,
} from "./web-harness.js";

const rig = suiteRig();

async function shortAnswers(page: Page): Promise<void> {
  await setInput(page, "#temperature", "0");
  await setInput(page, "#max-tokens", "6");
}

const titles = (page: Page) => page.locator("#chat-list .chat-title").allTextContents();

/** The conversation on screen as [role, text] pairs. */
async function onScreen(page: Page): Promise<[string, string][]> {
  return page
    .locator("#messages article.message")
    .evaluateAll((els) =>
      els.map((el) => [
        el.classList.contains("user") ? "user" : "assistant",
        el.querySelector(".body")?.textContent ?? "",
      ]),
    );
}

test("chats survive a reload; the list opens, searches, renames and deletes them", { skip }, async () => {
  const { context, page, errors } = await openPage(rig());
  await shortAnswers(page);
  const first = await textOf((await ask(page, "Tell me a fortune.")).locator(".body"));
  assert.ok(first.trim().length > 0);
  await page.click("#new-chat");
  assert.equal(await page.locator("#messages article").count(), 0, "a new chat starts empty");
  await ask(page, "Hello there!");
  assert.deepEqual(await titles(page), ["Hello there!", "Tell me a fortune."], "newest first");
  const second = await onScreen(page);

  await reload(page);
  assert.deepEqual(await onScreen(page), second, "the open chat comes back as it was");
  assert.deepEqual(await titles(page), ["Hello there!", "Tell me a fortune."]);
  assert.match(
    await textOf(page.locator("article.message.assistant .stats")),
    /TTFT \d+ ms/,
    "with its timing",
  );

  await openChat(page, "Tell me a fortune.");
  assert.deepEqual(await onScreen(page), [
    ["user", "Tell me a fortune."],
    ["assistant", first],
  ]);
  assert.equal(
    await page.locator('#chat-list li[aria-current="true"] .chat-title').textContent(),
    "Tell me a fortune.",
  );

  // Search: by title, and by words inside the messages (the list redraws after each keystroke).
  const searchShows = async (query: string, expected: string[]) => {
    await page.fill("#chat-search", query);
    const want = JSON.stringify(expected);
    const shown = () =>
      page.evaluate(() =>
        JSON.stringify([...document.querySelectorAll("#chat-list .chat-title")].map((t) => t.textContent)),
      );
    const deadline = Date.now() + 5_000;
    while ((await shown()) !== want && Date.now() < deadline) await page.waitForTimeout(25);
    assert.equal(await shown(), want, `searching '${query}'`);
  };
  await searchShows("hello", ["Hello there!"]);
  const answerWord = first
    .trim()
    .split(/\s+/)[0]!
    .replace(/[^\w']/g, "");
  await searchShows(`fortune ${answerWord}`, ["Tell me a fortune."]);
  await searchShows("no such words anywhere", []);
  await searchShows("", ["Hello there!", "Tell me a fortune."]);

  // Rename: Enter keeps the new title, Escape would not.
  const item = page.locator("#chat-list li", { hasText: "Tell me a fortune." });
  await item.locator(".chat-rename").click();
  await page.locator(".chat-rename-field").fill("Fortunes");
  await page.locator(".chat-rename-field").press("Enter");
  await page.locator("#chat-list .chat-title", { hasText: "Fortunes" }).waitFor();
  await page.locator("#chat-list li", { hasText: "Hello there!" }).locator(".chat-rename").click();
  await page.locator(".chat-rename-field").fill("Not kept");
  await page.locator(".chat-rename-field").press("Escape");

  // Delete asks first; dismissing keeps the chat.
  const answers = [false, true];
  const asked: string[] = [];
  page.on("dialog", (dialog) => {
    asked.push(dialog.message());
    void (answers.shift() ? dialog.accept() : dialog.dismiss());
  });
  await page.locator("#chat-list li", { hasText: "Hello there!" }).locator(".chat-delete").click();
  await page.waitForFunction(() => document.querySelectorAll("#chat-list li").length === 2);
  assert.deepEqual(await titles(page), ["Hello there!", "Fortunes"]);
  await page.locator("#chat-list li", { hasText: "Hello there!" }).locator(".chat-delete").click();
  await page.waitForFunction(() => document.querySelectorAll("#chat-list li").length === 1);
  assert.deepEqual(asked, ['Delete the chat "Hello there!"?', 'Delete the chat "Hello there!"?']);

  await reload(page);
  assert.deepEqual(await titles(page), ["Fortunes"], "the rename and the delete were saved");
  assert.equal((await onScreen(page)).length, 2, "the last opened chat is open again");
  noPageErrors(errors);
  await context.close();
});

test("export writes every chat to a JSON file; import reads it into another browser", { skip }, async () => {
  const { context, page, errors } = await openPage(rig());
  await shortAnswers(page);
  await ask(page, "First question");
  await page.click("#new-chat");
  await ask(page, "Second question");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-chats")]);
  assert.match(download.suggestedFilename(), /^awq-chats-\d{4}-\d{2}-\d{2}\.json$/);
  const text = await readFile(await download.path(), "utf8");
  const file = { name: "chats.json", mimeType: "application/json", buffer: Buffer.from(text) };
  const exported = JSON.parse(text);
  assert.equal(exported.format, "awq-ts-chats");
  assert.deepEqual(
    exported.conversations.map((c: { title: string; messages: { role: string }[] }) => [
      c.title,
      c.messages.map((m) => m.role),
    ]),
    [
      ["Second question", ["user", "assistant"]],
      ["First question", ["user", "assistant"]],
    ],
  );
  assert.match(await textOf(page.locator("#chats-note")), /Exported 2 chats/);
  await context.close();

  // Another browser profile: empty until the file is imported.
  const other = await openPage(rig());
  assert.equal(await other.page.locator("#chat-list li").count(), 0);
  await other.page.setInputFiles("#import-file", file);
  await other.page.locator("#chats-note", { hasText: "Imported 2 chats" }).waitFor();
  assert.deepEqual(await titles(other.page), ["Second question", "First question"]);
  await openChat(other.page, "First question");
  assert.deepEqual(
    (await onScreen(other.page)).map(([role, text]) => [role, text.trim() === "" ? "" : "text"]),
    [
      ["user", "text"],
      ["assistant", "text"],
    ],
  );
  assert.equal(
    (await textOf(other.page.locator("article.message.assistant .body"))).trim(),
    exported.conversations[1].messages[1].content.trim(),
  );
  // The same file again adds nothing; a broken one says what is wrong, and where.
  await other.page.setInputFiles("#import-file", file);
  await other.page.locator("#chats-note", { hasText: "Imported 0 chats (2 already here)" }).waitFor();
  await other.page.setInputFiles("#import-file", {
    name: "broken.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify({ conversations: [{ messages: [{ role: "robot", content: "x" }] }] })),
  });
  await other.page
    .locator("#chats-note.warn", {
      hasText: 'broken.json: conversations[0].messages[0].role: must be "user" or "assistant"',
    })
    .waitFor();
  assert.equal(await other.page.locator("#chat-list li").count(), 2);
  noPageErrors([...errors, ...other.errors]);
  await other.context.close();
});

test("per message: copy, edit and send again, regenerate, delete", { skip }, async () => {
  const { context, page, errors } = await openPage(rig());
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: rig().server.url });
  await shortAnswers(page);
  const sent: { role: string; content: string }[][] = [];
  await page.route("**/v1/chat/completions", async (route) => {
    sent.push(JSON.parse(route.request().postData() ?? "{}").messages);
    await route.continue();
  });
  await ask(page, "Tell me a fortune.");
  const answer = await textOf(page.locator("article.message.assistant .body"));
  await ask(page, "And another one?");
  assert.equal(await page.locator("article.message").count(), 4);

  // Copy: the message's text as written.
  await page.locator("article.message.assistant").first().locator(".copy-message").click();
  await page.locator('.copy-message[data-copied="true"]').waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied.trim(), answer.trim());

  // Regenerate the first answer: it and everything after go, the same question is asked again.
  await page.locator("article.message.assistant").first().locator(".regenerate-message").click();
  await page.locator('article.message.assistant[data-state="done"]').waitFor();
  assert.deepEqual(
    sent.at(-1)!.map((m) => m.content),
    ["Tell me a fortune."],
  );
  assert.deepEqual(
    (await onScreen(page)).map(([role]) => role),
    ["user", "assistant"],
  );
  assert.equal(
    await textOf(page.locator("article.message.assistant .body")),
    answer,
    "greedy: the same answer",
  );

  // Edit the question and send it again: the old answer goes, the new text is asked.
  await page.locator("article.message.user .edit-message").click();
  await page.locator(".edit-field").fill("Tell me two fortunes.");
  await page.locator(".edit-send").click();
  await page.locator('article.message.assistant[data-state="done"]').waitFor();
  assert.deepEqual(
    sent.at(-1)!.map((m) => [m.role, m.content]),
    [["user", "Tell me two fortunes."]],
  );
  assert.deepEqual((await onScreen(page))[0], ["user", "Tell me two fortunes."]);
  assert.equal((await onScreen(page)).length, 2);
  // Cancel leaves it alone.
  await page.locator("article.message.user .edit-message").click();
  await page.locator(".edit-field").fill("never sent");
  await page.locator(".edit-cancel").click();
  assert.deepEqual((await onScreen(page))[0], ["user", "Tell me two fortunes."]);

  // Delete the answer: gone from the page and from the saved chat.
  await page.locator("article.message.assistant .delete-message").click();
  assert.deepEqual(await onScreen(page), [["user", "Tell me two fortunes."]]);
  await reload(page);
  assert.deepEqual(await onScreen(page), [["user", "Tell me two fortunes."]]);
  noPageErrors(errors);
  await context.close();
});
