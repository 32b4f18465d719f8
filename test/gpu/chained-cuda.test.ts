/**
 * Chained decode steps on the GPU (on by default, AWQ_CUDA_CHAINED=0 turns them off; src/backend/cuda/cuda-backend.ts): the engine launches a
 * steady decode step before the one it continues has returned; the addon queues it behind that step and gathers its tokens on the device. The demo model must
 * give the same greedy and seeded tokens, stop-string text and logprobs chained as one step at a time.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CudaBackend } from "../../src/backend/cuda/cuda-backend.js";
import { Engine } from "../../src/engine/engine.js";
import type { RequestOutput, SamplingParams } from "../../src/engine/types.js";
import { openModel } from "../../src/model/load.js";
import type { ModelSource } from "../../src/model/types.js";
import { Tokenizer } from "../../src/tokenizer/tokenizer.js";
import { cudaUnavailableReason } from "./gpu-available.js";

const unavailable = await cudaUnavailableReason();
const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
const opened: ModelSource[] = [];

after(async () => {
  for (const m of opened) await m.checkpoint.close();
});

async function run(chained: boolean) {
  const backend = await CudaBackend.create({ chainedSteps: true });
  assert.ok(backend.chainedSteps, "this addon takes chained steps");
  const model = await openModel(modelDir);
  opened.push(model);
  const tokenizer = await Tokenizer.load(modelDir);
  const engine = await Engine.create({
    model,
    backend,
    tokenizer,
    maxModelLen: 256,
    gpuMemoryUtilization: 0.3,
    asyncScheduling: chained,
  });
  assert.equal(engine.chainsSteps, chained);
  const prompts = [
    "GPT4 User: Tell me a fortune.<|end_of_turn|>GPT4 Assistant:",
    "User: Quote a verse from the Bible.<|end_of_turn|>Assistant:",
    "In the beginning God created",
  ].map((p) => tokenizer.encode(p));
  const requests: { prompt: number[]; params: SamplingParams }[] = [
    ...prompts.map((prompt) => ({
      prompt,
      params: { temperature: 0, maxTokens: 40, ignoreEos: true, logprobs: 1 },
    })),
    { prompt: prompts[0]!, params: { temperature: 0.9, seed: 5, maxTokens: 33, ignoreEos: true } },
    { prompt: prompts[2]!, params: { temperature: 0, maxTokens: 40, ignoreEos: true, stop: [" the"] } },
    { prompt: prompts[1]!, params: { temperature: 0, maxTokens: 17, ignoreEos: true } },
  ];
  const generate = async (r: { prompt: number[]; params: SamplingParams }) => {
    const all: RequestOutput[] = [];
    for await (const out of engine.generate({ promptTokenIds: r.prompt, params: r.params })) all.push(out);
    return {
      tokens: all.flatMap((o) => o.tokenIdsDelta),
      text: all.map((o) => o.textDelta).join(""),
      finish: all.at(-1)!.finishReason,
      logprobs: all.flatMap((o) => o.logprobsDelta.map((l) => l.tokenId)),
    };
  };
  // Twice: the second round replays the CUDA graphs the first captured, so a chained step is launched on the JS
  // thread while the prefill step it continues still waits for a worker (the launch order the addon must keep).
  const outcomes = [];
  for (let round = 0; round < 2; round++) outcomes.push(...(await Promise.all(requests.map(generate))));
  // One seeded request at a time (each is its own prefill step and then chained steps), twice: the same text.
  const seeded = {
    prompt: prompts[1]!,
    params: { temperature: 0.9, topP: 0.9, seed: 1234, maxTokens: 16, logprobs: 3 },
  };
  for (let i = 0; i < 2; i++) outcomes.push(await generate(seeded));
  await engine.idle();
  const stats = engine.stats();
  await engine.shutdown();
  await backend.dispose();
  assert.equal(stats.freeBlocks, stats.numBlocks);
  return outcomes;
}

test("chained decode steps give the unchained engine's tokens, text and logprob entries", {
  skip: unavailable ?? false,
}, async () => {
  const unchained = await run(false);
  const chained = await run(true);
  assert.deepEqual(chained, unchained);
  const lengths = [40, 40, 40, 33, unchained[4]!.tokens.length, 17];
  assert.deepEqual(
    unchained.map((o) => o.tokens.length),
    [...lengths, ...lengths, 16, 16],
  );
  assert.deepEqual(chained.at(-1), chained.at(-2), "a seeded request run twice gives the same tokens");
});
