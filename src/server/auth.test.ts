import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { isProtectedPath, keyMatches } from "./auth.js";

test("the API routes need a key; health, metrics, version and the chat page do not", () => {
  for (const path of ["/v1/chat/completions", "/v1/models", "/tokenize", "/detokenize", "/generate"]) {
    assert.equal(isProtectedPath(path), true, path);
  }
  for (const path of ["/health", "/metrics", "/version", "/", "/index.html"]) {
    assert.equal(isProtectedPath(path), false, path);
  }
});

test("keyMatches accepts any configured key and nothing else", () => {
  const keys = ["alpha", "beta"].map((k) => createHash("sha256").update(k).digest());
  assert.equal(keyMatches("alpha", keys), true);
  assert.equal(keyMatches("beta", keys), true);
  assert.equal(keyMatches("alph", keys), false);
  assert.equal(keyMatches("", keys), false);
});
