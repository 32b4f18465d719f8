/**
 * A grammar worker that hangs, inside the engine (CPU backend, demo model): the request whose mask fill never
 * comes back ends with finish_reason "error" naming the worker and the deadline, while a constrained request on
 * another worker and an unconstrained one run on, and the next constrained request is served by a fresh worker.
 * The hang is injected into the real workers (AWQ_TEST_GRAMMAR_FAULT: a fill of a grammar containing the marker
 * never answers); the pool, its watchdog and the engine are the production ones, with the default deadline.
 * Likewise a worker whose XGrammar instance aborts (a real abort, injected on the rows of another marker): the
 * request that aborted ends naming XGrammar's reason, the constrained requests that shared its worker go on
 * (rebuilt on a fresh worker) with valid outputs, and an unconstrained one gives the same tokens as alone.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { RequestOutput } from "../engine/types.js";
import { LLM } from "../llm.js";
import { DEFAULT_FILL_TIMEOUT_MS, defaultMaxWorkers } from "./grammar-pool.js";

const modelDir = fileURLToPath(new URL("../../../models/tiny-chat-awq", import.meta.url));
let llm: LLM;

before(async () => {
  // Read when the engine's grammar pool starts.
  process.env.AWQ_TEST_GRAMMAR_FAULT = "hang:faultmarker,abort:abortmarker";
  llm = await LLM.load({ model: modelDir, backend: "cpu", maxModelLen: 512 });
});
after(async () => {
  delete process.env.AWQ_TEST_GRAMMAR_FAULT;
  await llm?.dispose();
});

const prompt = (what: string) => `User: Write ${what}.<|end_of_turn|>Assistant:`;

test("a hung grammar worker ends only the request whose fill it holds; the engine goes on", {
  timeout: 60_000,
}, async (t) => {
  // A long constrained request first: its grammar and matcher live on worker 1.
  const outputs: RequestOutput[] = [];
  const arrived: number[] = [];
  let firstChunk!: () => void;
  const started = new Promise<void>((resolve) => {
    firstChunk = resolve;
  });
  const long = (async () => {
    for await (const out of llm.stream(prompt("letters"), {
      structuredOutputs: { regex: "[a-z]{400}" },
      maxTokens: 480,
      seed: 3,
      temperature: 1,
    })) {
      outputs.push(out);
      arrived.push(performance.now());
      firstChunk();
    }
  })();
  await started;
  // Worker 1 has a live matcher: this grammar is compiled on worker 2, whose fill of it never answers.
  const t0 = performance.now();
  const hung = llm.generate(prompt("digits"), {
    structuredOutputs: { regex: "(faultmarker)?[0-9]{8}" },
    maxTokens: 20,
  });
  const free = llm.generate(prompt("anything"), { maxTokens: 24, ignoreEos: true, seed: 1, temperature: 1 });
  const [hungResult] = await hung;
  const hungEnded = performance.now();
  const hungMs = hungEnded - t0;
  const [freeResult] = await free;
  await long;

  t.diagnostic(`the hung request ended after ${hungMs.toFixed(0)} ms: ${hungResult!.error}`);
  assert.equal(hungResult!.finishReason, "error");
  assert.match(
    hungResult!.error ?? "",
    new RegExp(
      `^structured output: grammar worker 2 hung: no progress for ${DEFAULT_FILL_TIMEOUT_MS} ms while filling ` +
        "the masks of 1 sequence \\(the grammar pool's fillTimeoutMs, AWQ_GRAMMAR_FILL_TIMEOUT_MS\\); it was terminated and replaced",
    ),
  );
  assert.ok(hungMs < DEFAULT_FILL_TIMEOUT_MS * 1.25 + 3000, `ended after ${hungMs.toFixed(0)} ms`);

  const last = outputs.at(-1)!;
  assert.equal(last.finishReason, "stop", last.error ?? "");
  const text = outputs.map((o) => o.textDelta).join("");
  assert.match(text, /^[a-z]{400}$/, "the constrained request on worker 1 ran on, its output valid");
  const before = arrived.filter((ms) => ms < t0).length;
  const during = arrived.filter((ms) => ms >= t0 && ms < hungEnded).length;
  const afterwards = arrived.length - before - during;
  t.diagnostic(
    `the long request's outputs: ${before} before, ${during} during, ${afterwards} after the hang`,
  );
  assert.ok(afterwards > 0, "the long request was still running when the hung one ended");
  assert.equal(freeResult!.finishReason, "length", freeResult!.error ?? "");
  assert.equal(freeResult!.tokenIds.length, 24);

  // The next constrained request is served (by a fresh worker, or worker 1), its output valid.
  const [next] = await llm.generate(prompt("digits"), { structuredOutputs: { regex: "[0-9]{8}" } });
  assert.equal(next!.finishReason, "stop", next!.error ?? "");
  assert.match(next!.text, /^[0-9]{8}$/);
});

test("an abort in a grammar worker's XGrammar instance ends only the request that caused it; the requests sharing its worker go on, valid", {
  timeout: 120_000,
}, async (t) => {
  const freeParams = { maxTokens: 24, ignoreEos: true, seed: 5, temperature: 1 };
  const [alone] = await llm.generate(prompt("anything"), freeParams);
  // One long constrained request per worker, each started once the one before runs (so each grammar goes to a
  // worker without matchers): every worker then holds a live matcher, and the aborting grammar joins one of them.
  const patterns = ["[a-z]{480}", "[0-9]{480}", "[A-Z]{480}", "[a-f0-9]{480}"].slice(0, defaultMaxWorkers());
  const runs: Promise<{ regex: string; text: string; last: RequestOutput; arrived: number[] }>[] = [];
  for (const [i, regex] of patterns.entries()) {
    let running!: () => void;
    const started = new Promise<void>((resolve) => {
      running = resolve;
    });
    runs.push(
      (async () => {
        const texts: string[] = [];
        const arrived: number[] = [];
        let last: RequestOutput | undefined;
        try {
          for await (const out of llm.stream(prompt(`text ${i}`), {
            structuredOutputs: { regex },
            maxTokens: 490,
            seed: 11 + i,
            temperature: 1,
          })) {
            texts.push(out.textDelta);
            arrived.push(performance.now());
            last = out;
            running();
          }
        } finally {
          running();
        }
        return { regex, text: texts.join(""), last: last!, arrived };
      })(),
    );
    await started;
  }
  const [aborted] = await llm.generate(prompt("digits"), {
    structuredOutputs: { regex: "(abortmarker)?[0-9]{8}" },
    maxTokens: 20,
  });
  const abortEnded = performance.now();
  const free = llm.generate(prompt("anything"), freeParams);
  const done = await Promise.all(runs);
  const [freeResult] = await free;

  t.diagnostic(`the aborting request: ${aborted!.error}`);
  assert.equal(aborted!.finishReason, "error");
  assert.match(
    aborted!.error ?? "",
    /^structured output: XGrammar failed while filling the next-token mask of a regex constraint, after 0 output tokens: Intended to rollback/,
  );
  for (const r of done) {
    const later = r.arrived.filter((ms) => ms > abortEnded).length;
    t.diagnostic(
      `${r.regex}: ${r.arrived.length - later} outputs before the abort ended its request, ${later} after`,
    );
    assert.ok(later > 0, `${r.regex}: still running after the abort (its worker's matcher was live then)`);
    assert.equal(r.last.finishReason, "stop", r.last.error ?? "");
    assert.match(
      r.text,
      new RegExp(`^${r.regex}$`),
      "a constrained request on a worker went on, its output valid",
    );
  }
  assert.deepEqual(freeResult!.tokenIds, alone!.tokenIds, "the unconstrained request is untouched");
  const [next] = await llm.generate(prompt("digits"), { structuredOutputs: { regex: "[0-9]{8}" } });
  assert.equal(next!.finishReason, "stop", next!.error ?? "");
  assert.match(next!.text, /^[0-9]{8}$/);
});
