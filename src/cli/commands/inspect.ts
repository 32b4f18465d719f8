/**
 * `awq inspect`: what a model folder holds (architecture, size, quantization, context, vocabulary,
 * stop tokens), after validating config.json against every tensor header. A bad checkpoint prints
 * the loader's precise problem and exits 1.
 */
import type { Command } from "commander";
import { resolveModelPath } from "../../hub/resolve.js";
import type { SafetensorsCheckpoint } from "../../model/checkpoint.js";
import { modelParameterCount, modelWeightBytes, openModel } from "../../model/load.js";
import type { ModelConfig } from "../../model/types.js";
import { ChatFormatter } from "../../tokenizer/chat-template.js";
import { tokenizerMismatches } from "../../tokenizer/model-fit.js";
import { Tokenizer } from "../../tokenizer/tokenizer.js";
import { modelFromArgs } from "../flags.js";

export interface StopToken {
  id: number;
  token: string | null;
}

/** Everything `awq inspect` reports (its --json output). */
export interface ModelReport {
  dir: string;
  architecture: ModelConfig["architecture"];
  parameters: number;
  quantization: ModelConfig["quantization"];
  /** Bytes of the tensors the model uses, as stored. */
  weightBytes: number;
  files: string[];
  dtype: ModelConfig["dtype"];
  contextLength: number;
  vocabSize: number;
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  ropeTheta: number;
  ropeScaling: ModelConfig["ropeScaling"];
  tieWordEmbeddings: boolean;
  stopTokens: StopToken[];
  /** Where the stop tokens came from: the tokenizer files, or config.json alone when the tokenizer failed. */
  stopTokensSource: "tokenizer" | "config.json";
  /** Why the tokenizer could not be loaded, when it could not. */
  tokenizerError?: string;
  tokenizerVocabSize?: number;
  /**
   * The chat format chat requests and `awq chat` use with no --chat-template / --template: its name ("model" =
   * the model's Jinja chat_template; "openchat"), where it comes from, and a short conversation as the model
   * sees it. null when the model has none (then a template must be named).
   */
  chatFormat: { name: string; source: string; example: string } | null;
}

/** A system and a user turn, as the chat format renders them (with the assistant opener). */
const EXAMPLE_CHAT = [
  { role: "system" as const, content: "SYSTEM" },
  { role: "user" as const, content: "USER" },
];

/** Opens and validates the model in `dir` and describes it. Throws the loader's error for a bad checkpoint. */
export async function inspectModel(dir: string): Promise<ModelReport> {
  const model = await openModel(dir);
  try {
    const { config } = model;
    const report: ModelReport = {
      dir: model.dir,
      architecture: config.architecture,
      parameters: modelParameterCount(model),
      quantization: config.quantization,
      weightBytes: modelWeightBytes(model),
      files: (model.checkpoint as SafetensorsCheckpoint).filePaths(),
      dtype: config.dtype,
      contextLength: config.maxPositionEmbeddings,
      vocabSize: config.vocabSize,
      numLayers: config.numLayers,
      hiddenSize: config.hiddenSize,
      intermediateSize: config.intermediateSize,
      numHeads: config.numHeads,
      numKvHeads: config.numKvHeads,
      headDim: config.headDim,
      ropeTheta: config.ropeTheta,
      ropeScaling: config.ropeScaling,
      tieWordEmbeddings: config.tieWordEmbeddings,
      stopTokens: config.eosTokenIds.map((id) => ({ id, token: null })),
      stopTokensSource: "config.json",
      chatFormat: null,
    };
    try {
      const tokenizer = await Tokenizer.load(model.dir);
      report.stopTokens = tokenizer.stopTokenIds.map((id) => ({
        id,
        token: tokenizer.idToToken(id) ?? null,
      }));
      report.stopTokensSource = "tokenizer";
      report.tokenizerVocabSize = tokenizer.vocabSize;
      const formatter = await ChatFormatter.create(tokenizer).catch(() => null);
      const format = formatter?.name ?? null;
      if (formatter !== null) {
        report.chatFormat = {
          name: formatter.name,
          source:
            formatter.name === "model"
              ? "the model's Jinja chat_template (tokenizer_config.json)"
              : `built in: the model has no chat_template, and its vocabulary has <|end_of_turn|>`,
          example: formatter.formatPrompt(EXAMPLE_CHAT),
        };
      }
      const problems = tokenizerMismatches(tokenizer, config, format);
      if (problems.length > 0) report.tokenizerError = problems.join("; ");
    } catch (err) {
      report.tokenizerError = err instanceof Error ? err.message : String(err);
    }
    return report;
  } finally {
    await model.checkpoint.close();
  }
}

function formatCount(n: number): string {
  const scaled = n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${n}`;
  return `${scaled} (${n.toLocaleString("en-US")})`;
}

function formatBytes(n: number): string {
  const scaled = n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(2)} MB`;
  return `${scaled} (${n.toLocaleString("en-US")} bytes)`;
}

/** The human-readable report, one `label  value` line each. */
export function formatReport(r: ModelReport): string {
  const q = r.quantization;
  const rows: [string, string][] = [
    ["model", r.dir],
    ["architecture", r.architecture],
    ["parameters", formatCount(r.parameters)],
    [
      "quantization",
      q === null
        ? "none"
        : `AWQ GEMM ${q.bits}-bit, group size ${q.groupSize}, zero point` +
          (q.modulesToNotConvert.length > 0 ? `, not converted: ${q.modulesToNotConvert.join(", ")}` : ""),
    ],
    [
      "weight bytes",
      `${formatBytes(r.weightBytes)} in ${r.files.length} file${r.files.length === 1 ? "" : "s"}`,
    ],
    ["dtype", r.dtype],
    ["context length", String(r.contextLength)],
    [
      "vocabulary",
      String(r.vocabSize) +
        (r.tokenizerVocabSize !== undefined && r.tokenizerVocabSize !== r.vocabSize
          ? ` (tokenizer: ${r.tokenizerVocabSize})`
          : ""),
    ],
    [
      "shape",
      `${r.numLayers} layers, hidden ${r.hiddenSize}, intermediate ${r.intermediateSize}, ` +
        `${r.numHeads} heads, ${r.numKvHeads} kv heads, head_dim ${r.headDim}`,
    ],
    [
      "rope",
      `theta ${r.ropeTheta}` +
        (r.ropeScaling === null ? "" : `, ${r.ropeScaling.type} scaling x${r.ropeScaling.factor}`),
    ],
    ["tied embeddings", r.tieWordEmbeddings ? "yes" : "no"],
    [
      "stop tokens",
      (r.stopTokens
        .map((s) => (s.token === null ? String(s.id) : `${s.id} ${JSON.stringify(s.token)}`))
        .join(", ") || "none") + (r.stopTokensSource === "config.json" ? " (from config.json only)" : ""),
    ],
  ];
  rows.push([
    "chat format",
    r.chatFormat === null
      ? "none (chat needs --chat-template / --template openchat|openchat-gpt4|FILE)"
      : `${r.chatFormat.name}, ${r.chatFormat.source}: ${JSON.stringify(r.chatFormat.example)}`,
  ]);
  if (r.tokenizerError !== undefined) rows.push(["tokenizer", `unusable: ${r.tokenizerError}`]);
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return `${rows.map(([label, value]) => label.padEnd(width) + value).join("\n")}\n`;
}

interface InspectFlags {
  model?: string;
  revision?: string;
  json?: boolean;
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description(
      "describe a model folder and check its checkpoint and tokenizer against config.json (exit 1 when bad)",
    )
    .argument("[model]", 'model folder, hub id or "demo" (or --model)')
    .option("--model <dirOrId>", 'model folder, hub id or "demo" (same as the positional argument)')
    .option("--revision <rev>", "hub branch, tag or commit")
    .option("--json", "print the report as JSON")
    .action(async (positional: string | undefined, flags: InspectFlags) => {
      let report: ModelReport;
      try {
        const modelSpec = modelFromArgs("inspect", positional, flags.model);
        const dir = await resolveModelPath(modelSpec, { revision: flags.revision });
        report = await inspectModel(dir);
      } catch (err) {
        process.stderr.write(`awq inspect: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      // The report is printed either way; a model whose tokenizer cannot serve it is not a good model.
      if (report.tokenizerError !== undefined) {
        process.stderr.write(`awq inspect: the tokenizer is unusable: ${report.tokenizerError}\n`);
        process.exitCode = 1;
      }
    });
}
