import assert from "node:assert/strict";
import { test } from "node:test";
import { SseParser } from "./sse-parse.js";

test("events split across chunks at any byte come out whole and in order", () => {
  const stream =
    'data: {"a":1}\n\n: keep-alive\n\nevent: note\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n';
  for (let cut = 0; cut <= stream.length; cut++) {
    const parser = new SseParser();
    const events = [
      ...parser.push(stream.slice(0, cut)),
      ...parser.push(stream.slice(cut)),
      ...parser.finish(),
    ];
    assert.deepEqual(
      events,
      [
        { event: "message", data: '{"a":1}' },
        { event: "note", data: "line one\nline two" },
        { event: "message", data: "[DONE]" },
      ],
      `cut at ${cut}`,
    );
  }
});

test("CRLF and CR line endings, a missing space after the colon, and a final event without a blank line", () => {
  const parser = new SseParser();
  const events = [...parser.push("data:x\r\n\r\ndata: y\r"), ...parser.push("\rdata: z"), ...parser.finish()];
  assert.deepEqual(
    events.map((e) => e.data),
    ["x", "y", "z"],
  );
});
