import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { keyMatches, readApiKeyFile, routeNeedsKey } from "./auth.js";

test("every route needs a key except health, metrics, version and the chat page; no route at all needs one too", () => {
  for (const route of [
    "/v1/chat/completions",
    "/v1/models",
    "/v1/models/*",
    "/tokenize",
    "/detokenize",
    "/generate",
  ]) {
    assert.equal(routeNeedsKey(route), true, route);
  }
  assert.equal(routeNeedsKey(undefined), true, "unmatched");
  for (const route of ["/health", "/metrics", "/version", "/", "/index.html", "/assets/:name"]) {
    assert.equal(routeNeedsKey(route), false, route);
  }
});

test("keyMatches accepts any configured key and nothing else", () => {
  const keys = ["alpha", "beta"].map((k) => createHash("sha256").update(k).digest());
  assert.equal(keyMatches("alpha", keys), true);
  assert.equal(keyMatches("beta", keys), true);
  assert.equal(keyMatches("alph", keys), false);
  assert.equal(keyMatches("", keys), false);
});

test("readApiKeyFile: one key per line, comments and blanks skipped; a missing or empty file names itself", () => {
  const dir = mkdtempSync(join(tmpdir(), "awq-keys-"));
  const file = join(dir, "keys");
  writeFileSync(file, "# team keys\nsk-one\r\n\n  sk-two  \n");
  assert.deepEqual(readApiKeyFile(file), ["sk-one", "sk-two"]);
  writeFileSync(file, "# nothing\n\n");
  assert.throws(() => readApiKeyFile(file), new RegExp(`--api-key-file ${file}: holds no key`));
  assert.throws(() => readApiKeyFile(join(dir, "nope")), /--api-key-file .*nope: cannot read it \(ENOENT\)/);
});
