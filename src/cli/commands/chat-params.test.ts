import assert from "node:assert/strict";
import { test } from "node:test";
import { applyParamAssignments, describeParams } from "./chat-params.js";

test("/params sets values by API name (camelCase and dashes too) and unsets with default", () => {
  const start = { temperature: 0.7, topP: 0.95, maxTokens: 512 };
  const next = applyParamAssignments(
    start,
    "temperature=0 top-p=0.5 maxTokens=64 stop=###,END ignore_eos=on seed=3",
  );
  assert.deepEqual(next, {
    temperature: 0,
    topP: 0.5,
    maxTokens: 64,
    stop: ["###", "END"],
    ignoreEos: true,
    seed: 3,
  });
  assert.deepEqual(start, { temperature: 0.7, topP: 0.95, maxTokens: 512 }, "the old settings are untouched");
  assert.deepEqual(applyParamAssignments(next, "top_p=default stop=none"), {
    temperature: 0,
    maxTokens: 64,
    ignoreEos: true,
    seed: 3,
  });
  assert.equal(describeParams({ temperature: 0, stop: ["a", "b"] }), "  temperature=0\n  stop=a,b");
  assert.equal(describeParams({}), "  (engine defaults)");
});

test("/params rejects unknown keys, malformed pairs and out-of-range values, naming them", () => {
  const start = { temperature: 0.7 };
  assert.throws(() => applyParamAssignments(start, "temprature=1"), /unknown parameter "temprature"/);
  assert.throws(() => applyParamAssignments(start, "temperature"), /not key=value/);
  assert.throws(() => applyParamAssignments(start, "temperature=warm"), /temperature must be a number/);
  assert.throws(() => applyParamAssignments(start, "max_tokens=1.5"), /max_tokens must be an integer/);
  assert.throws(() => applyParamAssignments(start, "ignore_eos=maybe"), /ignore_eos must be true or false/);
  assert.throws(() => applyParamAssignments(start, "top_p=1.5"), /top_p/);
  assert.throws(() => applyParamAssignments(start, "max_tokens=4 min_tokens=8"), /min_tokens/);
  assert.throws(() => applyParamAssignments(start, ""), /expected key=value/);
});

test("awq chat starts from the engine's sampling defaults (temperature 1, top-p 1), as generate and the server", async () => {
  const { initialParams } = await import("./chat.js");
  const { resolveSamplingParams } = await import("../../engine/sampling-params.js");
  const params = initialParams({ maxTokens: 512 });
  assert.deepEqual(params, { maxTokens: 512 });
  const resolved = resolveSamplingParams(params);
  assert.equal(resolved.temperature, 1);
  assert.equal(resolved.topP, 1);
  assert.deepEqual(initialParams({ maxTokens: 64, temperature: 0.2, topK: 5 }), {
    maxTokens: 64,
    temperature: 0.2,
    topK: 5,
  });
});
