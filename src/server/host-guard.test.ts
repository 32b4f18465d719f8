import assert from "node:assert/strict";
import { test } from "node:test";
import { originAllowed } from "./cors.js";
import { hostName, hostPolicy, isLoopbackHost } from "./host-guard.js";

test("hostName drops the port, keeps IPv6 brackets", () => {
  assert.equal(hostName("LocalHost:8000"), "localhost");
  assert.equal(hostName("[::1]:8000"), "[::1]");
  assert.equal(hostName("example.com"), "example.com");
});

test("the Host guard applies on loopback only, and lets loopback names, --host and --allowed-hosts through", () => {
  assert.equal(isLoopbackHost("127.0.0.2"), true);
  assert.equal(isLoopbackHost("0.0.0.0"), false);
  assert.equal(hostPolicy("0.0.0.0", []), null, "a public listener accepts any name");
  assert.equal(hostPolicy("192.168.1.5", []), null);
  assert.equal(hostPolicy("127.0.0.1", ["*"]), null);
  const allowed = hostPolicy("127.0.0.1", ["chat.lan"])!;
  for (const host of ["localhost:1", "127.0.0.1:8000", "[::1]:8000", "a.localhost", "chat.lan:8000"]) {
    assert.equal(allowed(host), true, host);
  }
  for (const host of ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example:80", ""]) {
    assert.equal(allowed(host), false, host);
  }
});

test("CORS origins: loopback and listed ones, or all with *; nothing else by default", () => {
  assert.equal(originAllowed("http://localhost:5173", []), true);
  assert.equal(originAllowed("http://127.0.0.1:3000", []), true);
  assert.equal(originAllowed("https://evil.example", []), false);
  assert.equal(originAllowed("http://localhost.evil.example", []), false);
  assert.equal(originAllowed("https://app.example", ["https://app.example"]), true);
  assert.equal(originAllowed("https://evil.example", ["*"]), true);
});
