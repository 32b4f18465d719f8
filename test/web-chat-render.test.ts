/**
 * The chat page renders what models write: fenced code coloured by highlight.js with a Copy button,
 * GitHub tables, and TeX by KaTeX (fonts included), every file from our own server, at desktop and phone
 * width (screenshots saved). The replies are canned: the demo model cannot write them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ask,
  cannedReply,
  noPageErrors,
  openPage,
  RICH_REPLY,
  screenshot,
  skip,
  suiteRig,
  textOf,
} from "./web-harness.js";

const rig = suiteRig();

test("code is coloured with a working Copy button, tables and TeX render, and nothing comes from elsewhere", {
  skip,
}, async () => {
  const { context, page, errors } = await openPage(rig());
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: rig().server.url });
  const requested: string[] = [];
  page.on("request", (request) => requested.push(request.url()));
  await cannedReply(page, RICH_REPLY);
  const answer = await ask(page, "Solve a quadratic, with code and a table.");

  // highlight.js: coloured spans inside the code, the text unchanged.
  const code = answer.locator("pre code.language-python");
  assert.equal(await code.count(), 1);
  assert.ok((await code.locator("span.hljs-keyword").count()) >= 3, "keywords are coloured");
  assert.ok((await code.locator("span.hljs-string").count()) >= 1, "the docstring is coloured");
  assert.equal(await textOf(code), RICH_REPLY.split("```python\n")[1]!.split("\n```")[0]);
  const colour = await code
    .locator("span.hljs-keyword")
    .first()
    .evaluate((el) => getComputedStyle(el).color);
  const plain = await code.evaluate((el) => getComputedStyle(el).color);
  assert.notEqual(colour, plain, "the theme's colours apply");
  assert.equal(await textOf(answer.locator(".code-head .code-lang")), "python");

  await answer.locator("button.copy-code").click();
  await answer.locator('button.copy-code[data-copied="true"]').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), await textOf(code));

  // The table: header, alignment, cells.
  const table = answer.locator("table");
  assert.deepEqual(await table.locator("th").allTextContents(), ["a", "b", "c", "roots"]);
  assert.deepEqual(await table.locator("tbody tr").first().locator("td").allTextContents(), [
    "1",
    "-3",
    "2",
    "1, 2",
  ]);
  assert.equal(
    await table
      .locator("tbody td")
      .nth(2)
      .evaluate((el) => getComputedStyle(el).textAlign),
    "right",
  );
  assert.equal(
    await table
      .locator("tbody td")
      .nth(3)
      .evaluate((el) => getComputedStyle(el).textAlign),
    "center",
  );

  // KaTeX: a display formula and an inline one, typeset (MathML inside for screen readers), prices left alone.
  assert.equal(await answer.locator(".math-display .katex-display").count(), 1);
  assert.equal(await answer.locator(".math:not(.math-display) .katex").count(), 1);
  assert.equal(await answer.locator(".math-error").count(), 0);
  assert.equal(
    await answer.locator(".katex math annotation").first().textContent(),
    "x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}",
  );
  assert.match(await textOf(answer.locator("p").last()), /costs \$5 or \$10 to print/);
  const fontLoaded = await page.evaluate(async () => {
    await document.fonts.ready;
    return document.fonts.check("16px KaTeX_Main");
  });
  assert.ok(fontLoaded, "KaTeX's fonts load from our server");

  const origin = new URL(rig().server.url).origin;
  const foreign = requested.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith("data:"));
  assert.deepEqual(foreign, [], "nothing fetched from anywhere else");
  assert.ok(
    requested.some((url) => url.endsWith("/assets/KaTeX_Main-Regular.woff2")),
    "KaTeX's font came from us",
  );
  noPageErrors(errors);
  await screenshot(page, "chat-rich-desktop.png");
  await context.close();
});

test("at phone width the same answer fits the screen (wide parts scroll by themselves)", {
  skip,
}, async () => {
  const { context, page, errors } = await openPage(rig(), { phone: true });
  await cannedReply(page, RICH_REPLY);
  await page.fill("#prompt", "Solve a quadratic, with code and a table.");
  await page.click("#send");
  const answer = page.locator("article.message.assistant").first();
  await answer.and(page.locator('[data-state="done"]')).waitFor();
  assert.equal(await answer.locator(".katex-display").count(), 1);
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(fits, "no sideways scrolling of the page at 390 px");
  const messageRight = await answer.evaluate((el) => el.getBoundingClientRect().right);
  assert.ok(messageRight <= 390, `the answer ends at ${messageRight} px`);
  noPageErrors(errors);
  await screenshot(page, "chat-rich-phone.png");
  await context.close();
});
