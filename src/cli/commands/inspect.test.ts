import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { SafetensorsCheckpoint } from "../../model/checkpoint.js";
import { type TensorToWrite, writeSafetensors } from "../../model/safetensors-writer.js";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const mainJs = path.join(repoRoot, "dist/src/cli/main.js");
const demoDir = path.join(repoRoot, "models/tiny-chat-awq");
const fp16Dir = path.resolve(repoRoot, "../shared/models/tiny-chat");

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function awqInspect(...args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await run(process.execPath, [mainJs, "inspect", ...args], { cwd: repoRoot });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Copies the demo folder's small files (config, tokenizer) into `dir`. */
async function copySmallFiles(dir: string): Promise<void> {
  for (const name of await readdir(demoDir)) {
    if (!name.endsWith(".safetensors")) await copyFile(path.join(demoDir, name), path.join(dir, name));
  }
}

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "awq-inspect-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("awq inspect", () => {
  let demoWeightBytes = 0;

  test("describes the demo AWQ model", async () => {
    const { code, stdout } = await awqInspect("--model", "models/tiny-chat-awq");
    assert.equal(code, 0);
    assert.match(stdout, /^architecture\s+LlamaForCausalLM$/m);
    assert.match(stdout, /^parameters\s+12\.91M \(12,914,432\)$/m);
    assert.match(stdout, /^quantization\s+AWQ GEMM 4-bit, group size 128, zero point$/m);
    assert.match(stdout, /^context length\s+2048$/m);
    assert.match(stdout, /^vocabulary\s+32002$/m);
    assert.match(
      stdout,
      /^shape\s+6 layers, hidden 256, intermediate 768, 4 heads, 2 kv heads, head_dim 64$/m,
    );
    assert.match(stdout, /^stop tokens\s+.*32000 "<\|end_of_turn\|>"/m);
    // The chat format chat requests will use, with a conversation as the model sees it.
    assert.match(
      stdout,
      /^chat format\s+openchat, built in: .*: "SYSTEM<\|end_of_turn\|>User: USER<\|end_of_turn\|>Assistant:"$/m,
    );
    const json = JSON.parse((await awqInspect("--model", "models/tiny-chat-awq", "--json")).stdout);
    assert.equal(json.chatFormat.name, "openchat");
    assert.equal(json.chatFormat.example, "SYSTEM<|end_of_turn|>User: USER<|end_of_turn|>Assistant:");
    demoWeightBytes = json.weightBytes;
    assert.equal(json.parameters, 12_914_432);
    // Every byte of tensor data in the file is a weight the model uses.
    const fileSize = (await stat(path.join(demoDir, "model.safetensors"))).size;
    assert.ok(json.weightBytes < fileSize && json.weightBytes > fileSize - 64 * 1024);
  });

  test("describes the fp16 demo model with the same parameter count", async (t) => {
    if (!(await stat(fp16Dir).catch(() => null))) return t.skip("needs ../shared/models/tiny-chat");
    const { code, stdout } = await awqInspect("--model", fp16Dir, "--json");
    assert.equal(code, 0);
    const json = JSON.parse(stdout);
    assert.equal(json.quantization, null);
    assert.equal(json.parameters, 12_914_432);
  });

  test("a sharded copy (3 shards + index) reports the same model", async () => {
    const dir = path.join(tmp, "sharded");
    await mkdir(dir);
    await copySmallFiles(dir);
    const source = await SafetensorsCheckpoint.open(demoDir);
    const weightMap: Record<string, string> = {};
    try {
      const names = source.names();
      const perShard = Math.ceil(names.length / 3);
      for (let s = 0; s < 3; s++) {
        const file = `model-0000${s + 1}-of-00003.safetensors`;
        const tensors: TensorToWrite[] = names.slice(s * perShard, (s + 1) * perShard).map((name) => {
          weightMap[name] = file;
          const { dtype, shape } = source.info(name);
          return { name, dtype, shape, data: () => source.read(name) };
        });
        await writeSafetensors(path.join(dir, file), tensors, { format: "pt" });
      }
    } finally {
      await source.close();
    }
    await writeFile(
      path.join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const { code, stdout } = await awqInspect("--model", dir, "--json");
    assert.equal(code, 0);
    const json = JSON.parse(stdout);
    assert.equal(json.files.length, 3);
    assert.equal(json.parameters, 12_914_432);
    assert.equal(json.weightBytes, demoWeightBytes);
    assert.equal(json.architecture, "LlamaForCausalLM");
  });

  test("a truncated checkpoint prints the precise problem and exits 1", async () => {
    const dir = path.join(tmp, "truncated");
    await mkdir(dir);
    await copySmallFiles(dir);
    const file = path.join(dir, "model.safetensors");
    await copyFile(path.join(demoDir, "model.safetensors"), file);
    const size = (await stat(file)).size;
    await truncate(file, size - 1000);
    const { code, stdout, stderr } = await awqInspect("--model", dir);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.match(
      stderr,
      new RegExp(
        `^awq inspect: tensor "[\\w.]+" in ${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: data_offsets \\[\\d+, \\d+\\) ` +
          `lie outside the data section, which holds \\d+ bytes \\(file size ${size - 1000}\\): the file is truncated`,
      ),
    );
  });

  test("a checkpoint missing a tensor the config needs exits 1 naming it", async () => {
    const dir = path.join(tmp, "missing");
    await mkdir(dir);
    await copySmallFiles(dir);
    const source = await SafetensorsCheckpoint.open(demoDir);
    try {
      const tensors: TensorToWrite[] = source
        .names()
        .filter((name) => name !== "model.layers.3.mlp.up_proj.scales")
        .map((name) => ({ ...source.info(name), data: () => source.read(name) }));
      await writeSafetensors(path.join(dir, "model.safetensors"), tensors);
    } finally {
      await source.close();
    }
    const { code, stderr } = await awqInspect("--model", dir);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `awq inspect: checkpoint ${dir} does not match its config.json:\n` +
        '  tensor "model.layers.3.mlp.up_proj.scales": expected F16 (2, 768), found nothing (missing from the checkpoint)\n',
    );
  });
  test("a tokenizer with more ids than the model's vocabulary prints the report, names the mismatch, exits 1", async () => {
    const dir = path.join(tmp, "foreign-tokenizer");
    await mkdir(dir);
    await copySmallFiles(dir);
    await copyFile(path.join(demoDir, "model.safetensors"), path.join(dir, "model.safetensors"));
    const tokenizerPath = path.join(dir, "tokenizer.json");
    const tokenizerJson = JSON.parse(await readFile(tokenizerPath, "utf8"));
    tokenizerJson.added_tokens.push({
      id: 40000,
      content: "<|foreign|>",
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    await writeFile(tokenizerPath, JSON.stringify(tokenizerJson));
    const { code, stdout, stderr } = await awqInspect("--model", dir);
    assert.equal(code, 1);
    assert.match(stdout, /^vocabulary\s+32002 \(tokenizer: 40001\)$/m);
    assert.match(
      stderr,
      /the tokenizer is unusable: .*tokenizer\.json has 40001 token ids but the model's vocab_size is 32002/,
    );
  });
});
