/**
 * `awq quantize` end to end on small models: a synthetic fp16 Llama written by the test (AWQ search, loads,
 * generates), the demo fp16 model by RTN (tensor names, shapes and dtypes against the genuine AutoAWQ
 * checkpoint), and every bad input rejected before any output is written.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { LLM } from "../src/llm.js";
import { SafetensorsCheckpoint } from "../src/model/checkpoint.js";
import { openModel } from "../src/model/load.js";
import { quantizeModel } from "../src/quant/quantize.js";
import {
  demoAwqDir,
  repoRoot,
  type SyntheticShape,
  writeSyntheticModel,
} from "./fixtures/quant/synthetic-model.js";

const shared = path.resolve(repoRoot, "../shared");
const fp16Demo = path.join(shared, "models/tiny-chat");
const autoAwqDemo = path.join(shared, "models/tiny-chat-awq");
const mainJs = path.join(repoRoot, "dist/src/cli/main.js");

const SHAPE: SyntheticShape = {
  hidden: 128,
  intermediate: 256,
  layers: 2,
  heads: 2,
  kvHeads: 2,
  headDim: 64,
};
const GROUP = 64;

/** Calibration paragraphs in the demo's style, generated so the test needs no data files. */
function calibrationText(paragraphs: number): string {
  const subjects = ["the LORD", "Moses", "a fortune", "the king", "thy servant", "the people"];
  const verbs = ["said unto", "went up to", "shall bless", "spake unto", "looked upon"];
  const out: string[] = [];
  for (let i = 0; i < paragraphs; i++) {
    const s = subjects[i % subjects.length];
    const v = verbs[(i * 7) % verbs.length];
    out.push(
      `User: Recite verse ${i}.<|end_of_turn|>Assistant: And ${s} ${v} ${subjects[(i + 3) % 6]}, number ${i * 13}.`,
    );
  }
  return out.join("\n\n");
}

async function tensorTable(dir: string): Promise<Map<string, string>> {
  const ckpt = await SafetensorsCheckpoint.open(dir);
  try {
    return new Map(ckpt.names().map((n) => [n, `${ckpt.info(n).dtype} [${ckpt.info(n).shape.join(", ")}]`]));
  } finally {
    await ckpt.close();
  }
}

describe("awq quantize", () => {
  let work: string;
  let model: string;
  let calib: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), "awq-quantize-"));
    model = path.join(work, "fp16");
    await writeSyntheticModel(model, SHAPE);
    calib = path.join(work, "calib.txt");
    await writeFile(calib, calibrationText(60));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test("AWQ of a synthetic model: AutoAWQ files, loads with openModel, generates, close to fp16", async () => {
    const out = path.join(work, "awq");
    const stages: string[] = [];
    const done: number[] = [];
    const summary = await quantizeModel({
      modelDir: model,
      outDir: out,
      calibFile: calib,
      seqlen: 64,
      groupSize: GROUP,
      backend: "cpu",
      onProgress: (e) => stages.push(`${e.layer}:${e.stage}`),
      onLayerDone: (layer, seconds) => {
        assert.ok(seconds > 0);
        done.push(layer);
      },
    });
    assert.ok(summary.calibrationBlocks >= 4, `${summary.calibrationBlocks} blocks`);
    assert.equal(summary.backend, "cpu");
    assert.deepEqual(done, [0, 1]);
    assert.equal(summary.layerSeconds.length, 2);
    assert.ok(stages.includes("0:o scales") && stages.includes("1:down clip"), stages.join(" "));
    const config = JSON.parse(await readFile(path.join(out, "config.json"), "utf8"));
    assert.deepEqual(config.quantization_config, {
      quant_method: "awq",
      bits: 4,
      group_size: GROUP,
      zero_point: true,
      version: "gemm",
      modules_to_not_convert: null,
    });
    assert.deepEqual(JSON.parse(await readFile(path.join(out, "quant_config.json"), "utf8")), {
      zero_point: true,
      q_group_size: GROUP,
      w_bit: 4,
      version: "GEMM",
    });
    for (const file of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      assert.ok(existsSync(path.join(out, file)), file);
    }
    const opened = await openModel(out);
    assert.equal(opened.config.quantization?.groupSize, GROUP);
    assert.equal(opened.weights.layers[1].linears.down_proj.kind, "awq");
    await opened.checkpoint.close();

    const prompt = "User: Recite verse 3.<|end_of_turn|>Assistant:";
    const params = { temperature: 0, maxTokens: 6, logprobs: 0 };
    const run = async (dir: string) => {
      const llm = await LLM.load({ model: dir, backend: "cpu", maxModelLen: 64 });
      try {
        return (await llm.generate(prompt, params))[0];
      } finally {
        await llm.dispose();
      }
    };
    const [fp, q] = [await run(model), await run(out)];
    assert.equal(q.tokenIds.length, 6);
    // The first greedy token agrees with fp16 (random weights: later ones may drift apart).
    assert.equal(q.tokenIds[0], fp.tokenIds[0]);
  });

  test("every bad input is a clear error before anything is written", async () => {
    const out = path.join(work, "never");
    const attempt = (opts: Partial<Parameters<typeof quantizeModel>[0]>) =>
      quantizeModel({
        modelDir: model,
        outDir: out,
        calibFile: calib,
        seqlen: 64,
        groupSize: GROUP,
        ...opts,
      });
    await assert.rejects(attempt({ calibFile: path.join(work, "no-such-calib.txt") }), /no-such-calib\.txt/);
    await assert.rejects(
      attempt({ groupSize: 96 }),
      /model\.layers\.0\.self_attn\.q_proj: in_features 128 is not divisible by the group size 96/,
    );
    await assert.rejects(attempt({ modelDir: demoAwqDir }), /is already quantized .*pass the fp16/);
    const empty = path.join(work, "empty.txt");
    await writeFile(empty, "\n\n");
    await assert.rejects(attempt({ calibFile: empty }), /holds no text/);
    await assert.rejects(attempt({ seqlen: 4096 }), /is too short: .*less than one block of --seqlen 4096/);
    await assert.rejects(
      attempt({ calibFile: undefined, calibrationBlocks: [new Int32Array(64), new Int32Array(32)] }),
      /calibrationBlocks\[1\] has 32 tokens; every block must have seqlen = 64/,
    );
    await assert.rejects(
      attempt({ calibrationBlocks: [Int32Array.of(...new Array(63).fill(1), 40000)] }),
      /calibrationBlocks\[0\]: token id 40000 outside the vocabulary \(32002\)/,
    );
    const gpt2 = path.join(work, "gpt2");
    await writeSyntheticModel(
      gpt2,
      { ...SHAPE, layers: 1 },
      { config: { architectures: ["GPT2LMHeadModel"], model_type: "gpt2" } },
    );
    await assert.rejects(attempt({ modelDir: gpt2 }), /unsupported architecture "GPT2LMHeadModel"/);
    assert.equal(existsSync(out), false);
  });

  // Without --calib the CLI calibrates on the built-in text (test/quantize-cli.test.ts).
  test("--backend cuda without a GPU is a clear error, auto falls back to the CPU", async () => {
    const run = promisify(execFile);
    // A missing addon path: CUDA is unavailable here even on a machine with a GPU.
    const env = { ...process.env, AWQ_NATIVE_ADDON: path.join(work, "no-such-addon.node") };
    const cli = (out: string, ...args: string[]) =>
      run(process.execPath, [mainJs, "quantize", "--model", model, "--out", path.join(work, out), ...args], {
        env,
      });
    await assert.rejects(cli("cli", "--backend", "cuda", "--calib", calib), (err: { stderr: string }) => {
      assert.match(err.stderr, /--backend cuda: cannot quantize on the GPU: the CUDA addon is not built/);
      assert.match(err.stderr, /pass --backend cpu/);
      return true;
    });
    assert.equal(existsSync(path.join(work, "cli")), false);
    await assert.rejects(
      cli("cli", "--backend", "tpu", "--calib", calib),
      /--backend must be cpu, cuda or auto/,
    );
    const auto = await cli(
      "cli-auto",
      "--backend",
      "auto",
      "--calib",
      calib,
      "--samples",
      "4",
      "--seqlen",
      "64",
    );
    assert.match(auto.stderr, /CUDA unavailable \(the CUDA addon is not built.*\); quantizing on the CPU/);
    assert.match(auto.stderr, /on the cpu backend/);
    assert.ok(existsSync(path.join(work, "cli-auto/model.safetensors")));
  });

  test("RTN of the demo fp16 model has exactly the AutoAWQ checkpoint's tensor names, shapes and dtypes (twice)", async (t) => {
    if (!existsSync(fp16Demo) || !existsSync(autoAwqDemo)) {
      t.skip("needs ../shared/models/tiny-chat and ../shared/models/tiny-chat-awq");
      return;
    }
    const out = path.join(work, "demo-rtn");
    await quantizeModel({ modelDir: fp16Demo, outDir: out, method: "rtn" });
    // Again into the same folder: the tokenizer copies of the read-only shared folder must be replaceable.
    await quantizeModel({ modelDir: fp16Demo, outDir: out, method: "rtn" });
    const ours = await tensorTable(out);
    const theirs = await tensorTable(autoAwqDemo);
    assert.equal(ours.size, 140);
    assert.deepEqual([...ours.entries()].sort(), [...theirs.entries()].sort());
  });
});
