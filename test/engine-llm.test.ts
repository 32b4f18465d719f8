/** The library API (LLM) on the CPU backend and the demo model. */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { LLM } from "../src/index.js";

const modelDir = fileURLToPath(new URL("../../models/tiny-chat-awq", import.meta.url));
let llm: LLM;

before(async () => {
  llm = await LLM.load({ model: modelDir, backend: "cpu", maxModelLen: 256, maxNumSeqs: 4 });
});

after(async () => {
  await llm.dispose();
});

test("load exposes the model, tokenizer and engine", () => {
  assert.equal(llm.modelPath, modelDir);
  assert.equal(llm.config.numLayers, 6);
  assert.equal(llm.tokenizer.vocabSize, 32002);
  assert.equal(llm.engine.stats().running, 0);
});

test("generate takes a string, a list, or token ids, and agrees across them", async () => {
  const params = { temperature: 0, maxTokens: 12, ignoreEos: true };
  const [one] = await llm.generate("In the beginning God created", params);
  const ids = llm.encode("In the beginning God created");
  assert.equal(ids[0], llm.tokenizer.bosTokenId);
  const [fromIds] = await llm.generate(ids, params);
  const both = await llm.generate(
    ["User: Hi<|end_of_turn|>Assistant:", "In the beginning God created"],
    params,
  );
  assert.equal(both.length, 2);
  for (const r of [fromIds!, both[1]!]) {
    assert.deepEqual(r.tokenIds, one!.tokenIds);
    assert.equal(r.text, one!.text);
  }
  assert.equal(one!.tokenIds.length, 12);
  assert.equal(one!.finishReason, "length");
  assert.deepEqual(one!.usage, {
    promptTokens: ids.length,
    completionTokens: 12,
    totalTokens: ids.length + 12,
    cachedTokens: 0,
  });
  // The text is the output decoded in the prompt's context (SentencePiece's leading space kept).
  const skip = { skipSpecialTokens: true };
  const whole = llm.tokenizer.decode([...ids, ...one!.tokenIds], skip);
  assert.equal(one!.text, whole.slice(llm.tokenizer.decode(ids, skip).length));
});

test("n completions per prompt; logprobs on request; a bad parameter rejects", async () => {
  const results = await llm.generate("In the beginning", { n: 2, maxTokens: 6, seed: 3, logprobs: 2 });
  assert.equal(results.length, 2);
  for (const r of results) {
    assert.equal(r.logprobs?.length, r.tokenIds.length);
    r.logprobs!.forEach((lp, i) => {
      assert.equal(lp.tokenId, r.tokenIds[i]);
      assert.ok(lp.logprob <= 0);
      assert.equal(lp.top.length, 2);
    });
  }
  await assert.rejects(llm.generate("x", { topP: 2 }), { name: "InvalidParamError", param: "top_p" });
  assert.equal(llm.engine.stats().freeBlocks, llm.engine.stats().numBlocks);
});

test("chat applies the template; stream yields deltas that add up; aborting a stream frees its blocks", async () => {
  const messages = [{ role: "user" as const, content: "Say something wise." }];
  const reply = await llm.chat(messages, { temperature: 0, maxTokens: 40 });
  let streamed = "";
  const tokenIds: number[] = [];
  for await (const chunk of llm.stream({ messages }, { temperature: 0, maxTokens: 40 })) {
    streamed += chunk.textDelta;
    tokenIds.push(...chunk.tokenIdsDelta);
  }
  assert.equal(streamed, reply.text);
  assert.deepEqual(tokenIds, reply.tokenIds);

  const controller = new AbortController();
  let chunks = 0;
  let lastReason: string | null = null;
  for await (const chunk of llm.stream(
    "In the beginning",
    { maxTokens: 200, ignoreEos: true },
    { signal: controller.signal },
  )) {
    if (++chunks === 2) controller.abort();
    lastReason = chunk.finishReason;
  }
  assert.equal(lastReason, "abort");
  for await (const _ of llm.stream("In the beginning", { maxTokens: 200, ignoreEos: true })) break;
  await llm.engine.idle();
  assert.equal(llm.engine.stats().freeBlocks, llm.engine.stats().numBlocks);
});

test("dispose (also through Symbol.asyncDispose) ends the LLM", async () => {
  const other = await LLM.load({ model: modelDir, backend: "cpu", maxModelLen: 64, maxNumSeqs: 1 });
  const pending = other.generate("In the beginning", { maxTokens: 50, ignoreEos: true });
  await other[Symbol.asyncDispose]();
  const [result] = await pending;
  assert.equal(result!.finishReason, "abort");
  await assert.rejects(other.generate("x"), /disposed/);
});

test("a max-model-len beyond the model's trained context is refused, naming both lengths", async () => {
  await assert.rejects(
    LLM.load({ model: modelDir, backend: "cpu", maxModelLen: 4096, maxNumSeqs: 1 }),
    /max-model-len 4096 is longer than the model's context of 2048 tokens/,
  );
});

/** Open file descriptors of this process (Linux). */
function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

test("LLM.load takes a loadSignal: an aborted load rejects with its reason and leaves no file open", async () => {
  const before = openFds();
  const aborted = AbortSignal.abort(new Error("load cancelled"));
  await assert.rejects(LLM.load({ model: modelDir, backend: "cpu", loadSignal: aborted }), /load cancelled/);
  // Aborted while reading tensors: the CPU backend checks the signal between tensors.
  const controller = new AbortController();
  let reports = 0;
  await assert.rejects(
    LLM.load({
      model: modelDir,
      backend: "cpu",
      maxModelLen: 64,
      maxNumSeqs: 1,
      loadSignal: controller.signal,
      onLoadProgress: () => {
        if (++reports === 3) controller.abort(new Error("stop after three tensors"));
      },
    }),
    /stop after three tensors/,
  );
  assert.equal(reports, 3);
  assert.equal(openFds(), before);
});

test("LLM.load closes the checkpoint when the backend cannot be created", async () => {
  const before = openFds();
  // Without a usable GPU creating the CUDA backend fails; with one the load succeeds and dispose closes it all.
  const loaded = await LLM.load({ model: modelDir, backend: "cuda", maxModelLen: 64, maxNumSeqs: 1 }).catch(
    (err: unknown) => err,
  );
  if (loaded instanceof LLM) await loaded.dispose();
  else assert.equal((loaded as Error).name, "BackendUnavailableError");
  assert.equal(openFds(), before);
});
