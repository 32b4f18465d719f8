/** `awq generate --json-schema FILE`, `--regex` and `--grammar` on the demo model (CPU backend). */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Ajv } from "ajv";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const cli = `${repoRoot}dist/src/cli/main.js`;
const model = `${repoRoot}models/tiny-chat-awq`;
const base = ["generate", "--model", model, "--backend", "cpu", "--quiet", "--seed", "3", "--json"];

function awq(args: string[]) {
  return run(process.execPath, [cli, ...args], { cwd: repoRoot, timeout: 60_000 });
}

test("--json-schema FILE: the output validates against the schema", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "awq-cli-"));
  const schema = {
    type: "object",
    properties: { word: { type: "string", maxLength: 8 }, n: { type: "integer", minimum: 1, maximum: 5 } },
    required: ["word", "n"],
    additionalProperties: false,
  };
  const file = path.join(dir, "schema.json");
  writeFileSync(file, JSON.stringify(schema));
  const { stdout } = await awq([
    ...base,
    "--prompt",
    "Give JSON",
    "--chat",
    "--json-schema",
    file,
    "--max-tokens",
    "100",
  ]);
  const out = JSON.parse(stdout) as { text: string; finish_reason: string };
  assert.equal(out.finish_reason, "stop");
  assert.ok(new Ajv().validate(schema, JSON.parse(out.text)), out.text);

  writeFileSync(file, "{oops");
  await assert.rejects(
    awq([...base, "--prompt", "x", "--json-schema", file]),
    /--json-schema .* is not valid JSON/,
  );
});

test("--regex and --grammar constrain the output; a bad one names its flag", async () => {
  const { stdout } = await awq([...base, "--prompt", "Code:", "--regex", "[A-Z]{2}[0-9]{3}"]);
  assert.match((JSON.parse(stdout) as { text: string }).text, /^[A-Z]{2}[0-9]{3}$/);
  const dir = mkdtempSync(path.join(tmpdir(), "awq-cli-"));
  const grammar = path.join(dir, "g.ebnf");
  writeFileSync(grammar, 'root ::= ("yes" | "no") "!"');
  const g = await awq([...base, "--prompt", "Answer:", "--grammar", grammar]);
  assert.match((JSON.parse(g.stdout) as { text: string }).text, /^(yes|no)!$/);
  await assert.rejects(awq([...base, "--prompt", "x", "--regex", "[A-Z"]), /--regex: Regex parsing error/);
  await assert.rejects(
    awq([...base, "--prompt", "x", "--regex", "a", "--grammar", grammar]),
    /cannot be combined/,
  );
});
