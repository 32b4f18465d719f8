/** The <tool_call> convention: parsing a reply, streaming it in arbitrary pieces, and the OpenChat rendering. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { openChatToolMessages, parseToolCalls, ToolCallStream } from "./tool-format.js";

interface Msg {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  tool_calls?: { function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

const reply =
  'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n' +
  '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>';

test("parseToolCalls: calls out, text kept; an unparsable or unfinished call stays text", () => {
  const { content, calls } = parseToolCalls(reply);
  assert.equal(content, "Let me check.");
  assert.deepEqual(calls, [
    { name: "get_weather", arguments: '{"city":"Paris"}' },
    { name: "add", arguments: '{"a":1,"b":2}' },
  ]);
  assert.deepEqual(parseToolCalls("plain"), { content: "plain", calls: [] });
  const broken = 'x <tool_call>{oops}</tool_call> y <tool_call>{"name": "f"';
  assert.deepEqual(parseToolCalls(broken), { content: broken, calls: [] });
});

test("ToolCallStream: any split of the reply gives the same text and calls, nothing of a call leaks", () => {
  for (const size of [1, 2, 3, 7, 13, 1000]) {
    const stream = new ToolCallStream();
    let text = "";
    const calls = [];
    for (let i = 0; i < reply.length; i += size) {
      const part = stream.push(reply.slice(i, i + size));
      assert.ok(!part.content.includes("<tool"), `size ${size}: ${JSON.stringify(part.content)}`);
      text += part.content;
      calls.push(...part.calls);
    }
    text += stream.finish();
    assert.equal(text, "Let me check. \n", `size ${size}`);
    assert.deepEqual(calls, parseToolCalls(reply).calls, `size ${size}`);
  }
  const s = new ToolCallStream();
  assert.equal(s.push("a <tool").content, "a ");
  assert.equal(
    s.push("box> b").content,
    "<toolbox> b",
    "a prefix that does not become the marker is released",
  );
  assert.equal(s.push(" <tool_call>{unfinished").content, " ");
  assert.equal(s.finish(), "<tool_call>{unfinished", "an unfinished call is text at the end");
});

test("openChatToolMessages: tools join the system turn, calls and results become text", () => {
  const out = openChatToolMessages<Msg>(
    [
      { role: "system", content: "Be brief." },
      { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: '{"x": 1}' } }] },
      { role: "tool", content: "42", tool_call_id: "call_9" },
    ],
    [{ name: "f", description: "F", parameters: { type: "object" } }],
  );
  assert.equal(out[0]!.role, "system");
  assert.match(out[0]!.content, /^Be brief\.\n\nYou can call functions\./);
  assert.match(out[0]!.content, /\{"name":"f","description":"F","parameters":\{"type":"object"\}\}$/);
  assert.deepEqual(out[1], {
    role: "assistant",
    content: '<tool_call>{"name":"f","arguments":{"x":1}}</tool_call>',
    tool_calls: [{ function: { name: "f", arguments: '{"x": 1}' } }],
  });
  assert.equal(out[2]!.role, "user");
  assert.equal(out[2]!.content, '<tool_response id="call_9">42</tool_response>');
  assert.equal(
    openChatToolMessages<Msg>([{ role: "user", content: "hi" }], [{ name: "g" }])[0]!.role,
    "system",
  );
});
