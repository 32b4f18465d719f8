/**
 * Greedy tokens of the reference prompts (test/fixtures/reference.json: HF transformers fp16 continuations) with
 * --kv-cache-dtype auto and fp8 on the CPU backend, for each demo model: tokens equal to the reference before
 * the first difference, and where fp8 first departs from auto. Prints one JSON line per model and dtype.
 *
 *   node dist/bench/kv-cache-fp8.js [--models ../shared/models/tiny-chat,../shared/models/tiny-chat-awq]
 */
import { readFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { parseArgs } from "node:util";
import { LLM } from "../src/llm.js";

const repoRoot = resolve(import.meta.dirname, "../..");
const { values } = parseArgs({
  options: {
    models: {
      type: "string",
      default: `${repoRoot}/../shared/models/tiny-chat,${repoRoot}/../shared/models/tiny-chat-awq`,
    },
  },
});

interface ReferencePrompt {
  prompt_ids: number[];
  new_ids: number[];
}
const reference = JSON.parse(readFileSync(`${repoRoot}/test/fixtures/reference.json`, "utf8")) as {
  models: Record<string, ReferencePrompt[]>;
};

const samePrefix = (a: readonly number[], b: readonly number[]) => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
};

for (const dir of values.models!.split(",")) {
  const prompts = reference.models[basename(dir)];
  if (prompts === undefined) throw new Error(`reference.json has no prompts for ${basename(dir)}`);
  const byDtype: Record<string, number[][]> = {};
  /** Per prompt, per position: the auto run's top-1 minus top-2 logprob (how close greedy was to a tie). */
  let autoMargins: number[][] = [];
  for (const kvCacheDtype of ["auto", "fp8"] as const) {
    const llm = await LLM.load({ model: dir, backend: "cpu", maxModelLen: 512, kvCacheDtype });
    try {
      const results = await Promise.all(
        prompts.map((p) =>
          llm
            .generate([p.prompt_ids], { maxTokens: p.new_ids.length, temperature: 0, logprobs: 2 })
            .then((r) => r[0]!),
        ),
      );
      const outs = results.map((r) => r.tokenIds);
      if (kvCacheDtype === "auto") {
        autoMargins = results.map((r) =>
          (r.logprobs ?? []).map((lp) => lp.top[0]!.logprob - lp.top[1]!.logprob),
        );
      }
      byDtype[kvCacheDtype] = outs;
      const departures = outs.map((o, i) => samePrefix(o, byDtype.auto![i]!));
      console.log(
        JSON.stringify({
          model: basename(dir),
          kvCacheDtype,
          referenceTokens: prompts.map((p) => p.new_ids.length),
          matchingPrefix: outs.map((o, i) => samePrefix(o, prompts[i]!.new_ids)),
          identicalToReference: outs.every(
            (o, i) => samePrefix(o, prompts[i]!.new_ids) === prompts[i]!.new_ids.length,
          ),
          ...(kvCacheDtype === "fp8"
            ? {
                fp8VsAutoPrefix: departures,
                identicalToAuto: outs.every((o, i) => JSON.stringify(o) === JSON.stringify(byDtype.auto![i])),
                // Where fp8 departs: auto's logprob gap between its top two tokens at that position.
                autoTop2GapAtDeparture: departures.map((k, i) =>
                  k < outs[i]!.length ? Number(autoMargins[i]![k]!.toFixed(4)) : null,
                ),
                autoMedianTop2Gap: Number(
                  autoMargins
                    .flat()
                    .sort((a, b) => a - b)
                    [Math.floor(autoMargins.flat().length / 2)]!.toFixed(4),
                ),
              }
            : {}),
        }),
      );
    } finally {
      await llm.dispose();
    }
  }
}
