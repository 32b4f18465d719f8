/**
 * The model's tokenizer: Hugging Face `tokenizer.json` through @huggingface/tokenizers, plus what the
 * side files (tokenizer_config.json, special_tokens_map.json, added_tokens.json, generation_config.json,
 * config.json) say about BOS, EOS, padding, stop tokens and the chat template.
 */
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { SentencePieceBpe } from "./sentencepiece-bpe.js";

export interface EncodeOptions {
  /** Put one BOS token first. Defaults to tokenizer_config.json's `add_bos_token` (true for Llama). */
  addBos?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (`<s>`, `</s>`, `<|end_of_turn|>`, ...) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

/** OpenChat's end-of-turn token: the seed model ends its replies with it, whatever its eos says. */
export const END_OF_TURN_TOKEN = "<|end_of_turn|>";

type JsonObject = Record<string, unknown>;

interface AddedTokenEntry {
  id: number;
  content: string;
  special?: boolean;
  [key: string]: unknown;
}

export class Tokenizer {
  /** Number of ids (highest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** Every id that ends generation: all eos ids of every config file, plus `<|end_of_turn|>` if present. */
  readonly stopTokenIds: number[];
  /** The model's own Jinja chat template, or null when it has none. */
  readonly chatTemplate: string | null;
  /** The BOS / EOS token strings, as chat templates see them (`bos_token`, `eos_token`). */
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** Whether encode() puts a BOS first unless told otherwise. */
  readonly addBosByDefault: boolean;
  /** The model folder this tokenizer was loaded from. */
  readonly dir: string;

  private readonly specialIds: ReadonlySet<number>;

  private constructor(
    private readonly hf: HfTokenizer,
    /** The fast encoder where the tokenizer is SentencePiece-style BPE (same ids as hf), else null. */
    private readonly fast: SentencePieceBpe | null,
    dir: string,
    config: JsonObject,
    specialTokensMap: JsonObject,
    generationConfig: JsonObject,
    modelConfig: JsonObject,
    chatTemplate: string | null,
  ) {
    this.dir = dir;
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const special = new Set<number>();
    for (const [id, token] of hf.get_added_tokens_decoder()) if (token.special) special.add(id);
    this.specialIds = special;

    this.bosToken = tokenContent(config.bos_token) ?? tokenContent(specialTokensMap.bos_token);
    this.eosToken = tokenContent(config.eos_token) ?? tokenContent(specialTokensMap.eos_token);
    this.bosTokenId =
      (this.bosToken !== null ? this.tokenToId(this.bosToken) : undefined) ??
      firstId(generationConfig.bos_token_id) ??
      firstId(modelConfig.bos_token_id) ??
      null;
    this.eosTokenId =
      (this.eosToken !== null ? this.tokenToId(this.eosToken) : undefined) ??
      firstId(generationConfig.eos_token_id) ??
      firstId(modelConfig.eos_token_id) ??
      null;
    const padToken = tokenContent(config.pad_token) ?? tokenContent(specialTokensMap.pad_token);
    this.padTokenId =
      (padToken !== null ? this.tokenToId(padToken) : undefined) ??
      firstId(generationConfig.pad_token_id) ??
      firstId(modelConfig.pad_token_id) ??
      null;

    const stops: number[] = [];
    const addStop = (id: number | undefined) => {
      if (id !== undefined && id >= 0 && id < this.vocabSize && !stops.includes(id)) stops.push(id);
    };
    for (const id of allIds(generationConfig.eos_token_id)) addStop(id);
    for (const id of allIds(modelConfig.eos_token_id)) addStop(id);
    for (const source of [specialTokensMap.eos_token, config.eos_token]) {
      const content = tokenContent(source);
      if (content !== null) addStop(this.tokenToId(content));
    }
    addStop(this.tokenToId(END_OF_TURN_TOKEN));
    this.stopTokenIds = stops;

    this.chatTemplate = chatTemplate;
    this.addBosByDefault =
      typeof config.add_bos_token === "boolean"
        ? config.add_bos_token
        : this.bosTokenId !== null && hf.encode("a", { add_special_tokens: true }).ids[0] === this.bosTokenId;
  }

  /** Loads the tokenizer of a model folder (which must hold `tokenizer.json`). */
  static async load(dir: string): Promise<Tokenizer> {
    const folderStat = await stat(dir).catch(() => null);
    if (folderStat === null || !folderStat.isDirectory()) {
      throw new Error(`Model folder ${dir} does not exist or is not a folder`);
    }
    const tokenizerPath = path.join(dir, "tokenizer.json");
    if (!existsSync(tokenizerPath)) {
      throw new Error(
        `no tokenizer.json in ${dir}: awq needs the model's Hugging Face fast-tokenizer file tokenizer.json ` +
          "(with tokenizer_config.json beside it); SentencePiece-only tokenizer.model files are not supported",
      );
    }
    const tokenizerJson = (await readJson(tokenizerPath)) as JsonObject;
    const config = (await readOptionalJson(path.join(dir, "tokenizer_config.json"))) ?? {};
    const specialTokensMap = (await readOptionalJson(path.join(dir, "special_tokens_map.json"))) ?? {};
    const addedTokens = (await readOptionalJson(path.join(dir, "added_tokens.json"))) ?? {};
    const generationConfig = (await readOptionalJson(path.join(dir, "generation_config.json"))) ?? {};
    const modelConfig = (await readOptionalJson(path.join(dir, "config.json"))) ?? {};

    mergeAddedTokens(tokenizerJson, config, specialTokensMap, addedTokens);
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson, config);
    } catch (err) {
      throw new Error(`${tokenizerPath}: cannot build the tokenizer: ${(err as Error).message}`);
    }
    const jinjaFile = path.join(dir, "chat_template.jinja");
    const chatTemplate = existsSync(jinjaFile)
      ? await readFile(jinjaFile, "utf8")
      : pickChatTemplate(config.chat_template, path.join(dir, "tokenizer_config.json"));
    // AWQ_TOKENIZER_FAST=0: every text through @huggingface/tokenizers (same ids, slower).
    const fast = process.env.AWQ_TOKENIZER_FAST === "0" ? null : SentencePieceBpe.from(tokenizerJson, config);
    return new Tokenizer(
      hf,
      fast,
      dir,
      config,
      specialTokensMap,
      generationConfig,
      modelConfig,
      chatTemplate,
    );
  }

  /** Whether encode() runs our SentencePiece-BPE encoder (sentencepiece-bpe.ts) rather than the library's. */
  get hasFastEncoder(): boolean {
    return this.fast !== null;
  }

  /** Text -> ids. Special and added tokens written in the text (`<|end_of_turn|>`) become single ids. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids =
      this.fast !== null ? this.fast.encode(text) : this.hf.encode(text, { add_special_tokens: false }).ids;
    const addBos = opts.addBos ?? this.addBosByDefault;
    // Exactly one BOS: a text that already starts with the BOS token does not get a second one.
    if (addBos && this.bosTokenId !== null && ids[0] !== this.bosTokenId) ids.unshift(this.bosTokenId);
    return ids;
  }

  /** Ids -> text. Throws a RangeError for an id outside the vocabulary. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    if (ids.length === 0) return "";
    return this.hf.decode(ids as number[], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Whether the id is a special token (`<s>`, `</s>`, `<unk>`, `<|end_of_turn|>`, ...). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}

async function readJson(file: string): Promise<unknown> {
  const text = await readFile(file, "utf8");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

async function readOptionalJson(file: string): Promise<JsonObject | null> {
  if (!existsSync(file)) return null;
  const value = await readJson(file);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${file} must hold a JSON object`);
  }
  return value as JsonObject;
}

/** A special token as the config files write it: a string, or an AddedToken object `{ content }`. */
function tokenContent(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object" && typeof (value as JsonObject).content === "string") {
    return (value as JsonObject).content as string;
  }
  return null;
}

function allIds(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value))
    return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  return [];
}

function firstId(value: unknown): number | undefined {
  return allIds(value)[0];
}

/**
 * Tokens that tokenizer_config.json (`added_tokens_decoder`) or added_tokens.json know but tokenizer.json
 * lacks are added to it, so they stay whole when they appear in text.
 */
function mergeAddedTokens(
  tokenizerJson: JsonObject,
  config: JsonObject,
  specialTokensMap: JsonObject,
  addedTokens: JsonObject,
): void {
  const list = Array.isArray(tokenizerJson.added_tokens)
    ? (tokenizerJson.added_tokens as AddedTokenEntry[])
    : [];
  const knownIds = new Set(list.map((t) => t.id));
  const specialContents = new Set<string>();
  for (const map of [specialTokensMap, config]) {
    for (const [key, value] of Object.entries(map)) {
      if (key.endsWith("_token")) {
        const content = tokenContent(value);
        if (content !== null) specialContents.add(content);
      }
    }
    if (Array.isArray(map.additional_special_tokens)) {
      for (const value of map.additional_special_tokens) {
        const content = tokenContent(value);
        if (content !== null) specialContents.add(content);
      }
    }
  }
  const decoder = config.added_tokens_decoder;
  if (decoder !== null && typeof decoder === "object") {
    for (const [idText, value] of Object.entries(decoder as JsonObject)) {
      const id = Number(idText);
      const content = tokenContent(value);
      if (!Number.isInteger(id) || content === null || knownIds.has(id)) continue;
      list.push({ ...(value as JsonObject), id, content });
      knownIds.add(id);
    }
  }
  for (const [content, id] of Object.entries(addedTokens)) {
    if (typeof id !== "number" || knownIds.has(id)) continue;
    list.push({ id, content, special: specialContents.has(content), normalized: false });
    knownIds.add(id);
  }
  tokenizerJson.added_tokens = list;
}

/** `chat_template` is a string, or a list of `{ name, template }` where the one named "default" is used. */
function pickChatTemplate(value: unknown, configPath: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (t): t is { name: string; template: string } =>
        t !== null && typeof t === "object" && typeof t.name === "string" && typeof t.template === "string",
    );
    return named.find((t) => t.name === "default")?.template ?? named[0]?.template ?? null;
  }
  throw new Error(`${configPath}: chat_template must be a string or a list of { name, template }`);
}
