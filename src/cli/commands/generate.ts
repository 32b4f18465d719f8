/** `awq generate`: one completion of a prompt (raw text, or one chat turn), streamed to stdout or as JSON. */

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import type { BackendChoice } from "../../backend/create.js";
import type { KvCacheDtype } from "../../backend/kv-cache-dtype.js";
import { InvalidParamError, resolveSamplingParams } from "../../engine/sampling-params.js";
import type { RequestOutput, SamplingParams } from "../../engine/types.js";
import { type ChatParams, LLM } from "../../llm.js";
import type { ChatMessage } from "../../tokenizer/chat-template.js";
import {
  backendFlag,
  integerFlag,
  KV_CACHE_DTYPE_HELP,
  kvCacheDtypeFlag,
  modelFromArgs,
  numberFlag,
  positiveIntegerFlag,
  textOrStdin,
} from "../flags.js";
import { loadProgress } from "../progress.js";

interface GenerateFlags {
  model?: string;
  revision?: string;
  prompt: string;
  chat?: boolean;
  system?: string;
  template?: string;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;
  stop?: string[];
  ignoreEos?: boolean;
  maxModelLen?: number;
  backend: BackendChoice;
  kvCacheDtype: KvCacheDtype;
  tensorParallelSize?: number;
  json?: boolean;
  quiet?: boolean;
  jsonSchema?: string;
  regex?: string;
  grammar?: string;
}

/** The flag that set each structured output (for error messages). */
const CONSTRAINT_FLAGS: Record<string, string> = {
  "structuredOutputs.json": "--json-schema",
  "structuredOutputs.regex": "--regex",
  "structuredOutputs.grammar": "--grammar",
};

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description(
      "generate a completion of --prompt (streamed to stdout; --json prints one object at the end)",
    )
    .argument("[model]", 'model folder, hub id or "demo" (or --model)')
    .option("--model <dirOrId>", 'model folder, hub id or "demo" (same as the positional argument)')
    .option("--revision <rev>", "hub branch, tag or commit")
    .requiredOption(
      "--prompt <text>",
      "the prompt (raw text: special tokens in it are parsed, one BOS is added); - reads it from stdin",
    )
    .option("--chat", "treat --prompt as one user message and apply the chat template")
    .option("--system <text>", "system prompt (with --chat)")
    .option("--template <name|file>", "chat template: openchat, openchat-gpt4, or a Jinja file (with --chat)")
    .option("--max-tokens <n>", "most tokens to generate", integerFlag("--max-tokens"), 256)
    .option("--temperature <t>", "sampling temperature; 0 = greedy (default 1)", numberFlag("--temperature"))
    .option("--top-p <p>", "nucleus sampling mass (default 1 = off)", numberFlag("--top-p"))
    .option("--top-k <k>", "keep the k most likely tokens (default 0 = off)", integerFlag("--top-k"))
    .option(
      "--min-p <p>",
      "drop tokens below p x the top probability (default 0 = off)",
      numberFlag("--min-p"),
    )
    .option(
      "--repetition-penalty <r>",
      "HF repetition penalty (default 1 = off)",
      numberFlag("--repetition-penalty"),
    )
    .option("--presence-penalty <p>", "OpenAI presence penalty (default 0)", numberFlag("--presence-penalty"))
    .option(
      "--frequency-penalty <p>",
      "OpenAI frequency penalty (default 0)",
      numberFlag("--frequency-penalty"),
    )
    .option("--seed <s>", "random seed (reproducible sampling)", integerFlag("--seed"))
    .option("--stop <s...>", "stop strings (cut from the output)")
    .option("--ignore-eos", "keep generating past the end-of-sequence token")
    .option(
      "--max-model-len <n>",
      "context length (default: the model's)",
      positiveIntegerFlag("--max-model-len"),
    )
    .option("--backend <name>", "cpu, cuda or auto", backendFlag, "auto")
    .option("--kv-cache-dtype <dtype>", KV_CACHE_DTYPE_HELP, kvCacheDtypeFlag, "auto")
    .option(
      "--tensor-parallel-size <n>",
      "ranks each matrix is split over (CPU backend: the reference of the sharding; CUDA needs the NCCL build)",
      positiveIntegerFlag("--tensor-parallel-size"),
    )
    .option(
      "--json",
      'print one JSON object { "text", "token_ids", "finish_reason", "usage" } instead of streaming',
    )
    .option("--quiet", "no progress bar while loading")
    .option("--json-schema <file>", "constrain the output to JSON valid under the JSON schema in FILE")
    .option("--regex <pattern>", "constrain the output to match the regular expression")
    .option("--grammar <file>", "constrain the output to the EBNF grammar in FILE (XGrammar's GBNF dialect)")
    .action(async (positional: string | undefined, flags: GenerateFlags) => {
      const model = modelFromArgs("generate", positional, flags.model);
      if (!flags.chat && (flags.system !== undefined || flags.template !== undefined)) {
        throw new Error("--system and --template only apply with --chat");
      }
      const params: ChatParams = {
        structuredOutputs: structuredFromFlags(flags),
        maxTokens: flags.maxTokens,
        temperature: flags.temperature,
        topP: flags.topP,
        topK: flags.topK,
        minP: flags.minP,
        repetitionPenalty: flags.repetitionPenalty,
        presencePenalty: flags.presencePenalty,
        frequencyPenalty: flags.frequencyPenalty,
        seed: flags.seed,
        stop: flags.stop,
        ignoreEos: flags.ignoreEos,
      };
      // Bad flags fail now, not after loading the weights (a minute for a 13B model).
      checkSamplingFlags({ ...params, structuredOutputs: undefined } as SamplingParams);
      const prompt = await textOrStdin("--prompt", flags.prompt);
      const llm = await LLM.load({
        model,
        revision: flags.revision,
        backend: flags.backend,
        tensorParallelSize: flags.tensorParallelSize,
        kvCacheDtype: flags.kvCacheDtype,
        chatTemplate: flags.template,
        maxModelLen: flags.maxModelLen,
        maxNumSeqs: 1,
        onLoadProgress: loadProgress({ quiet: flags.quiet }),
      });
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      try {
        const input = flags.chat ? { messages: chatMessages(flags, prompt) } : prompt;
        let text = "";
        const tokenIds: number[] = [];
        let last: RequestOutput | undefined;
        for await (const out of llm.stream(input, params, { signal: controller.signal })) {
          text += out.textDelta;
          tokenIds.push(...out.tokenIdsDelta);
          if (!flags.json) process.stdout.write(out.textDelta);
          last = out;
        }
        if (last === undefined) throw new Error("the engine gave no output");
        if (last.finishReason === "error")
          throw new Error(`generation failed: ${last.error ?? "unknown error"}`);
        if (flags.json) {
          const usage = {
            prompt_tokens: last.promptTokens,
            completion_tokens: last.completionTokens,
            total_tokens: last.promptTokens + last.completionTokens,
          };
          const result = { text, token_ids: tokenIds, finish_reason: last.finishReason, usage };
          process.stdout.write(`${JSON.stringify(result)}\n`);
        } else {
          process.stdout.write("\n");
        }
      } catch (err) {
        throw flagError(err);
      } finally {
        process.removeListener("SIGINT", onSigint);
        await llm.dispose();
      }
    });
}

function chatMessages(flags: GenerateFlags, prompt: string): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (flags.system !== undefined) messages.push({ role: "system", content: flags.system });
  messages.push({ role: "user", content: prompt });
  return messages;
}

/** Validates the sampling flags by the engine's rules. */
function checkSamplingFlags(params: SamplingParams): void {
  try {
    resolveSamplingParams(params);
  } catch (err) {
    throw flagError(err);
  }
}

/** --json-schema / --regex / --grammar -> vLLM's structured_outputs (at most one). */
function structuredFromFlags(flags: GenerateFlags): ChatParams["structuredOutputs"] {
  const given = [
    flags.jsonSchema && "--json-schema",
    flags.regex !== undefined && "--regex",
    flags.grammar && "--grammar",
  ];
  const set = given.filter((g): g is string => typeof g === "string");
  if (set.length > 1) throw new Error(`${set.join(" and ")} cannot be combined: give one output constraint`);
  if (flags.jsonSchema !== undefined) {
    const text = readFlagFile("--json-schema", flags.jsonSchema);
    try {
      return { json: JSON.parse(text) };
    } catch (err) {
      throw new Error(`--json-schema ${flags.jsonSchema} is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (flags.regex !== undefined) return { regex: flags.regex };
  if (flags.grammar !== undefined) return { grammar: readFlagFile("--grammar", flags.grammar) };
  return undefined;
}

function readFlagFile(flag: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`${flag} ${file}: ${(err as Error).message}`);
  }
}

/** Names the flag the user typed, not the API field. */
function flagError(err: unknown): unknown {
  if (err instanceof InvalidParamError && CONSTRAINT_FLAGS[err.param] !== undefined) {
    return new Error(err.message.replace(`invalid ${err.param}`, CONSTRAINT_FLAGS[err.param]!));
  }
  if (err instanceof InvalidParamError) {
    return new Error(err.message.replace(err.param, `--${err.param.replace(/_/g, "-")}`));
  }
  return err;
}
