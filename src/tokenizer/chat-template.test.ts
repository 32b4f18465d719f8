import assert from "node:assert/strict";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ChatFormatter, type ChatMessage } from "./chat-template.js";
import { Tokenizer } from "./tokenizer.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const modelDir = path.join(repoRoot, "models/tiny-chat-awq");
const chatmlFile = path.join(repoRoot, "test/fixtures/tokenizer/chatml.jinja");

const MULTI_TURN: ChatMessage[] = [
  { role: "system", content: "You are OpenOrcaChat." },
  { role: "user", content: "Hello" },
  { role: "assistant", content: "Hi" },
  { role: "user", content: "How are you today?" },
];
// Published by OpenChat's authors.
const MULTI_TURN_IDS = [
  1, 887, 526, 4673, 2816, 1113, 1451, 271, 29889, 32000, 4911, 29901, 15043, 32000, 4007, 22137, 29901, 6324,
  32000, 4911, 29901, 1128, 526, 366, 9826, 29973, 32000, 4007, 22137, 29901,
];

describe("ChatFormatter", () => {
  let tokenizer: Tokenizer;
  const scratch: string[] = [];
  before(async () => {
    tokenizer = await Tokenizer.load(modelDir);
  });
  after(async () => {
    for (const dir of scratch) await rm(dir, { recursive: true, force: true });
  });

  test("uses OpenChat for a model with <|end_of_turn|> and no chat_template", async () => {
    const formatter = await ChatFormatter.create(tokenizer);
    assert.equal(formatter.name, "openchat");
    const hello = formatter.apply([{ role: "user", content: "Hello" }]);
    assert.equal(hello.prompt, "User: Hello<|end_of_turn|>Assistant:");
    assert.deepEqual(hello.tokenIds, [1, 4911, 29901, 15043, 32000, 4007, 22137, 29901]);
  });

  test("formats a system prompt and several turns as OpenChat's authors published", async () => {
    const formatter = await ChatFormatter.create(tokenizer, { template: "openchat" });
    const { prompt, tokenIds } = formatter.apply(MULTI_TURN);
    assert.equal(
      prompt,
      "You are OpenOrcaChat.<|end_of_turn|>User: Hello<|end_of_turn|>Assistant: Hi<|end_of_turn|>User: How are you today?<|end_of_turn|>Assistant:",
    );
    assert.deepEqual(tokenIds, MULTI_TURN_IDS);
    const closed = formatter.apply(MULTI_TURN, { addGenerationPrompt: false });
    assert.ok(closed.prompt.endsWith("How are you today?<|end_of_turn|>"));
  });

  test("the GPT4 variant gives reference.json's prompt ids", async () => {
    const formatter = await ChatFormatter.create(tokenizer, { template: "openchat-gpt4" });
    assert.equal(formatter.name, "openchat-gpt4");
    const { prompt, tokenIds } = formatter.apply([{ role: "user", content: "Tell me a fortune." }]);
    assert.equal(prompt, "GPT4 User: Tell me a fortune.<|end_of_turn|>GPT4 Assistant:");
    assert.deepEqual(
      tokenIds,
      [
        1, 402, 7982, 29946, 4911, 29901, 24948, 592, 263, 19717, 29889, 32000, 402, 7982, 29946, 4007, 22137,
        29901,
      ],
    );
  });

  test("refuses bad conversations and unknown template names with what is wrong", async () => {
    const formatter = await ChatFormatter.create(tokenizer);
    assert.throws(() => formatter.apply([]), /non-empty/);
    assert.throws(
      () => formatter.apply([{ role: "robot" as "user", content: "x" }]),
      /messages\[0\]\.role is "robot": expected system, user, assistant, tool/,
    );
    assert.throws(
      () =>
        formatter.apply([
          { role: "user", content: "Hi" },
          { role: "system", content: "late" },
        ]),
      /messages\[1\] is a system message: only the first/,
    );
    await assert.rejects(ChatFormatter.create(tokenizer, { template: "chatgpt" }), /openchat, openchat-gpt4/);
  });

  test("renders a Jinja template file, with one BOS although the template writes bos_token", async () => {
    const formatter = await ChatFormatter.create(tokenizer, { template: chatmlFile });
    const { prompt, tokenIds } = formatter.apply([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hello" },
    ]);
    assert.equal(
      prompt,
      "<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
    );
    assert.equal(tokenIds[0], 1);
    assert.notEqual(tokenIds[1], 1);
    assert.deepEqual(tokenIds, tokenizer.encode(prompt));
    assert.deepEqual(tokenIds.slice(1), tokenizer.encode(prompt.slice(3), { addBos: false }));
    // raise_exception reaches the user with the template's message.
    assert.throws(
      () =>
        formatter.apply([
          { role: "user", content: "a" },
          { role: "narrator" as "user", content: "b" },
        ]),
      /narrator/,
    );
  });

  test("the model's own chat_template wins over OpenChat, and the user's choice over both", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "awq-chat-template-"));
    scratch.push(dir);
    for (const file of ["tokenizer.json", "special_tokens_map.json"]) {
      await copyFile(path.join(modelDir, file), path.join(dir, file));
    }
    const config = JSON.parse(await readFile(path.join(modelDir, "tokenizer_config.json"), "utf8"));
    config.chat_template = await readFile(chatmlFile, "utf8");
    await writeFile(path.join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const withTemplate = await Tokenizer.load(dir);

    const own = await ChatFormatter.create(withTemplate);
    assert.equal(own.name, "model");
    assert.ok(own.apply([{ role: "user", content: "Hi" }]).prompt.includes("<|im_start|>user\nHi<|im_end|>"));

    const chosen = await ChatFormatter.create(withTemplate, { template: "openchat" });
    assert.deepEqual(
      chosen.apply([{ role: "user", content: "Hello" }]).tokenIds,
      [1, 4911, 29901, 15043, 32000, 4007, 22137, 29901],
    );

    const inline = await ChatFormatter.create(withTemplate, {
      template: "{% for m in messages %}[{{ m.content }}]{% endfor %}",
    });
    assert.equal(
      inline.apply([
        { role: "user", content: "x" },
        { role: "assistant", content: "y" },
      ]).prompt,
      "[x][y]",
    );
  });
});
