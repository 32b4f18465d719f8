/**
 * `awq quantize` as a user runs it without a terminal (a log, CI): the built-in calibration text when --calib
 * is not given, and one progress line per layer with an ETA from the layers already done.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { DEFAULT_CALIB_FILE, quantizeModel } from "../src/quant/quantize.js";
import { repoRoot, writeSyntheticModel } from "./fixtures/quant/synthetic-model.js";

const run = promisify(execFile);
const mainJs = path.join(repoRoot, "dist/src/cli/main.js");

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), "awq-quantize-cli-"));
  await writeSyntheticModel(path.join(work, "fp16"), {
    hidden: 128,
    intermediate: 256,
    layers: 3,
    heads: 2,
    kvHeads: 2,
    headDim: 64,
  });
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

test("the built-in calibration text is a small public-domain file shipped in the package", () => {
  assert.equal(DEFAULT_CALIB_FILE, path.join(repoRoot, "data/calib/kjv-sample.txt"));
  const bytes = statSync(DEFAULT_CALIB_FILE).size;
  assert.ok(bytes > 100_000 && bytes < 400_000, `${bytes} bytes`);
  assert.ok(
    existsSync(path.join(repoRoot, "data/calib/README.md")),
    "its source and license are written down",
  );
});

test("awq quantize without --calib, stderr not a terminal: the built-in text, a line per layer with an ETA", {
  timeout: 300_000,
}, async () => {
  const out = path.join(work, "awq");
  const { stderr } = await run(
    process.execPath,
    [
      mainJs,
      "quantize",
      path.join(work, "fp16"),
      "--out",
      out,
      "--seqlen",
      "64",
      "--group-size",
      "64",
      "--samples",
      "16",
    ],
    { cwd: repoRoot, timeout: 280_000 },
  );
  const lines = stderr.trimEnd().split("\n");
  const layerLines = lines.filter((l) => l.includes("done in"));
  assert.equal(layerLines.length, 3, stderr);
  assert.match(layerLines[0]!, /^awq quantize: layer 1\/3 done in \d+\.\d s \(\d+ s elapsed, ETA \d+ s\)$/);
  assert.match(layerLines[1]!, /^awq quantize: layer 2\/3 done in .* ETA \d+ s\)$/);
  assert.match(
    layerLines[2]!,
    /^awq quantize: layer 3\/3 done in \d+\.\d s \(\d+ s elapsed\)$/,
    "no ETA at the end",
  );
  assert.match(lines.at(-1)!, /calibration tokens from the built-in text .*kjv-sample\.txt\) in \d+\.\d s/);
  assert.ok(existsSync(path.join(out, "model.safetensors")));
});

test("GPTQ rounding is off by default (docs/benchmarks.md: better perplexity without it on the demo) and on with gptq", {
  timeout: 300_000,
}, async () => {
  const model = path.join(work, "one-layer");
  await writeSyntheticModel(model, {
    hidden: 128,
    intermediate: 256,
    layers: 1,
    heads: 2,
    kvHeads: 2,
    headDim: 64,
  });
  const stagesOf = async (search: { gptq?: boolean }, out: string) => {
    const stages: string[] = [];
    await quantizeModel({
      modelDir: model,
      outDir: path.join(work, out),
      seqlen: 64,
      samples: 16,
      groupSize: 64,
      backend: "cpu",
      search,
      onProgress: (e) => stages.push(e.stage),
    });
    return stages;
  };
  const plain = await stagesOf({}, "default");
  assert.ok(plain.includes("down clip"), plain.join(", "));
  assert.deepEqual(
    plain.filter((s) => s.endsWith("gptq")),
    [],
  );
  const refined = await stagesOf({ gptq: true }, "gptq");
  assert.ok(
    refined.some((s) => s.endsWith("gptq")),
    refined.join(", "),
  );
});
