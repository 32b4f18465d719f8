import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type Conversation,
  exportJson,
  ImportError,
  newId,
  parseImport,
  titleFrom,
} from "./conversation-io.js";

const chat: Conversation = {
  id: "c1",
  title: "Fortunes",
  createdAt: 1000,
  updatedAt: 2000,
  messages: [
    { id: "m1", role: "user", content: "Tell me a fortune.", createdAt: 1000 },
    {
      id: "m2",
      role: "assistant",
      content: "You will **write tests**.",
      createdAt: 1500,
      stats: { completionTokens: 5, timeToFirstTokenMs: 12, tokensPerSecond: 40, finishReason: "stop" },
    },
  ],
};

test("an export imports back unchanged", () => {
  const text = exportJson([chat], new Date(0));
  assert.equal(JSON.parse(text).format, "awq-ts-chats");
  assert.deepEqual(parseImport(text), [chat]);
  // A bare list and a single conversation too.
  assert.deepEqual(parseImport(JSON.stringify([chat])), [chat]);
  assert.deepEqual(parseImport(JSON.stringify(chat)), [chat]);
});

test("missing ids, titles and times are filled in", () => {
  const [imported] = parseImport(
    JSON.stringify({ messages: [{ role: "user", content: "What is the\ncapital of France?" }] }),
    42,
  );
  assert.equal(imported!.title, "What is the");
  assert.match(imported!.id, /^[0-9a-f]{32}$/);
  assert.equal(imported!.updatedAt, 42);
  assert.equal(imported!.messages[0]!.createdAt, 42);
});

test("llama.cpp web UI's export of a conversation imports", () => {
  const llamaCpp = {
    conv: { id: "conv-1", name: "Math help", lastModified: 5000, currNode: 3 },
    messages: [
      { id: 1, convId: "conv-1", type: "root", role: "system", content: "", timestamp: 4000, parent: -1 },
      { id: 2, convId: "conv-1", type: "text", role: "user", content: "2+2?", timestamp: 4100, parent: 1 },
      { id: 3, convId: "conv-1", type: "text", role: "assistant", content: "4", timestamp: 4200, parent: 2 },
    ],
  };
  const [imported] = parseImport(JSON.stringify(llamaCpp));
  assert.equal(imported!.title, "Math help");
  assert.equal(imported!.updatedAt, 5000);
  assert.deepEqual(
    imported!.messages.map((m) => [m.role, m.content, m.createdAt]),
    [
      ["user", "2+2?", 4100],
      ["assistant", "4", 4200],
    ],
  );
});

test("a bad file is an ImportError saying what and where", () => {
  const cases: [string, RegExp][] = [
    ["{nope", /^not JSON/],
    ["42", /expected an object or a list/],
    ['{"conversations": {}}', /conversations must be a list/],
    ['{"hello": 1}', /expected \{ conversations/],
    ['[{"messages": "hi"}]', /^\[0\]\.messages: must be a list/],
    [
      '{"conversations": [{"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}]}',
      /^conversations\[0\]\.messages\[1\]\.role: must be "user" or "assistant", not "robot"/,
    ],
    ['{"messages": [{"role": "user", "content": 3}]}', /^messages\[0\]\.content: must be a string/],
  ];
  for (const [text, message] of cases)
    assert.throws(
      () => parseImport(text),
      (err: unknown) => err instanceof ImportError && message.test(err.message),
      text,
    );
});

test("titles and ids", () => {
  assert.equal(titleFrom("  short question  "), "short question");
  const long = titleFrom(
    "Explain in detail how the key-value cache of a transformer decoder saves work on every step",
  );
  assert.ok(long.length <= 61 && long.endsWith("…"), long);
  assert.equal(titleFrom("   "), "New chat");
  assert.notEqual(newId(), newId());
});
