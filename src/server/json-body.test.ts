import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError } from "./errors.js";
import { findIllFormedString, jsonDepthExceeds, MAX_JSON_DEPTH, parseJsonBody } from "./json-body.js";

function refusal(body: string | Buffer): ApiError {
  try {
    parseJsonBody(typeof body === "string" ? Buffer.from(body) : body);
  } catch (err) {
    assert.ok(err instanceof ApiError);
    assert.equal(err.statusCode, 400);
    return err;
  }
  assert.fail("expected a 400");
}

test("jsonDepthExceeds counts brackets outside strings only", () => {
  assert.equal(jsonDepthExceeds("[[[]]]", 3), false);
  assert.equal(jsonDepthExceeds("[[[[]]]]", 3), true);
  assert.equal(jsonDepthExceeds('{"a": "[[[[[[[[", "b": "\\"[[[["}', 1), false);
  assert.equal(jsonDepthExceeds('[{"a": [{}]}]', 4), false);
  assert.equal(jsonDepthExceeds('[{"a": [{"b": []}]}]', 4), true);
});

test("parseJsonBody: values pass through; empty, malformed, too deep and non-UTF-8 bodies are named 400s", () => {
  assert.deepEqual(parseJsonBody(Buffer.from('{"prompt": "héllo 😀", "n": 2}')), {
    prompt: "héllo 😀",
    n: 2,
  });
  assert.equal(refusal("  ").code, "invalid_json");
  assert.match(refusal('{"a": ').message, /not valid JSON/);
  const deep = `${"[".repeat(MAX_JSON_DEPTH + 1)}${"]".repeat(MAX_JSON_DEPTH + 1)}`;
  assert.match(refusal(deep).message, /nested more than 64 levels deep/);
  assert.match(
    refusal(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])).message,
    /first bad byte at offset 2/,
  );
  // An encoded surrogate (ED A0 80) is invalid UTF-8 too.
  assert.match(refusal(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22])).message, /offset 1/);
  assert.match(refusal(Buffer.from([0x22, 0xe0, 0x80, 0x80, 0x22])).message, /offset 1/); // overlong
});

test("lone surrogates are found with their path; pairs are fine", () => {
  assert.equal(findIllFormedString({ a: ["ok", { b: "x\ud800" }] }), "a[1].b");
  assert.equal(findIllFormedString({ "k\udc00": 1 }), "k\udc00");
  assert.equal(findIllFormedString(["\ud83d\ude00"]), null);
  assert.equal(refusal('{"messages": [{"content": "\\udfff"}]}').param, "messages[0].content");
  assert.deepEqual(parseJsonBody(Buffer.from('{"t": "\\ud83d\\ude00"}')), { t: "😀" });
});
