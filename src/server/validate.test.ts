import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError } from "./errors.js";
import { ChatCompletionBody, CompletionBody } from "./schemas.js";
import { pointerToParam, validateBody } from "./validate.js";

function paramOf(fn: () => unknown): string | null {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ApiError);
    assert.equal(err.statusCode, 400);
    return err.param;
  }
  assert.fail("expected a 400");
}

test("pointerToParam writes OpenAI-style field paths", () => {
  assert.equal(pointerToParam("/messages/0/role"), "messages[0].role");
  assert.equal(pointerToParam("/max_tokens"), "max_tokens");
  assert.equal(pointerToParam("/prompt/1/2"), "prompt[1][2]");
  assert.equal(pointerToParam(""), "");
});

test("valid bodies pass; null counts as absent; unknown fields are allowed", () => {
  const body = { messages: [{ role: "user", content: "hi" }], max_tokens: null, stop: ["a"], tools: [] };
  assert.deepEqual(validateBody(ChatCompletionBody, body), body);
  assert.ok(validateBody(CompletionBody, { prompt: [[1, 2], [3]] }));
});

test("each invalid field is named, nested ones with their path", () => {
  const chat = (extra: object) => () =>
    validateBody(ChatCompletionBody, { messages: [{ role: "user", content: "x" }], ...extra });
  assert.equal(paramOf(chat({ max_tokens: 0 })), "max_tokens");
  assert.equal(paramOf(chat({ temperature: 3 })), "temperature");
  assert.equal(paramOf(chat({ top_p: 0 })), "top_p");
  assert.equal(paramOf(chat({ logit_bias: { "5": "x" } })), "logit_bias[5]");
  assert.equal(paramOf(chat({ messages: [{ role: "user" }] })), "messages[0].content");
  assert.equal(paramOf(chat({ messages: [{ role: "x", content: "y" }] })), "messages[0].role");
  assert.equal(
    paramOf(() => validateBody(CompletionBody, { prompt: [] })),
    "prompt",
  );
  assert.equal(
    paramOf(() => validateBody(CompletionBody, [])),
    "body",
  );
});

test("messages say what was expected and what came", () => {
  try {
    validateBody(ChatCompletionBody, { messages: [{ role: "user", content: "x" }], n: -3 });
  } catch (err) {
    assert.match((err as Error).message, /'n'.*>= 1.*-3/);
    return;
  }
  assert.fail("expected a 400");
});
