/**
 * The grammar engine behind one small interface: compile a ConstraintSpec once (cached by its text), then one
 * GrammarMatcher per sequence (allowed-token bitmask, accept, roll back, is-terminated). XGrammar does the work;
 * nothing outside src/structured/ knows it.
 *
 * A user's grammar is first compiled in a small "probe" instance (a 3-token vocabulary, so it is cheap): XGrammar
 * reports a bad grammar by aborting its WebAssembly instance, which corrupts it; the probe is replaced after an
 * abort, and the main instance (which holds the live matchers) only ever sees grammars the probe accepted.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import { expandBoundedStrings } from "./bounded-strings.js";
import { type ConstraintSpec, MAX_SPEC_CHARS, specKey } from "./constraint-spec.js";
import { applyNumericRules, rewriteNumericBounds } from "./numeric-bounds.js";
import { PromiseLru } from "./promise-lru.js";
import { checkSchemaSupported, withoutFormatBesidePattern } from "./schema-support.js";
import {
  abortReason,
  loadXgrammar,
  type XgCompiledGrammar,
  type XgCompiler,
  type XgInstance,
  type XgMatcher,
} from "./xgrammar-runtime.js";

/** A constraint that cannot be compiled; `message` says why (the HTTP layer names the field). */
export class GrammarError extends Error {
  override name = "GrammarError";
}

/** One sequence's position in a grammar. */
export interface GrammarMatcher {
  /** Writes the allowed-token bitmask (bit t of word t>>5 set = token t allowed) into `out` (maskWords). */
  fillNextTokenBitmask(out: Int32Array): Promise<void>;
  /** Advances by one token; false (and no change) when the grammar does not allow it. */
  acceptToken(tokenId: number): boolean;
  /** Undoes the last n accepted tokens. */
  rollback(n: number): void;
  /** Whether the grammar is complete and a stop token was accepted. */
  isTerminated(): boolean;
  dispose(): void;
}

export interface CompiledGrammar {
  readonly key: string;
  newMatcher(): Promise<GrammarMatcher>;
  /** Frees its WebAssembly memory; matchers made from it keep working (they share XGrammar's compiled data). */
  dispose(): void;
}

/** How the tokenizer's pieces encode bytes (XGrammar's vocab types). */
export interface VocabInfo {
  /** Encoded pieces by id, special tokens included; length = vocabSize. */
  pieces: string[];
  vocabType: "byte_fallback" | "byte_level" | "raw";
  prependSpace: boolean;
  /** Rows of the logits (config.json vocab_size; may exceed pieces.length). */
  vocabSize: number;
  /** Tokens that end a sequence once the grammar is complete. */
  stopTokenIds: number[];
}

const CACHE_SIZE = 64;

export class GrammarEngine {
  private readonly cache = new PromiseLru<CompiledGrammar>(CACHE_SIZE, (g) => g.dispose());
  private probe: Promise<{ inst: XgInstance; compiler: XgCompiler }> | null = null;

  private constructor(
    private readonly main: XgInstance,
    private readonly compiler: XgCompiler,
    readonly vocabSize: number,
    private readonly stopTokenIds: number[],
  ) {}

  /**
   * Whether the main instance (compiled grammars, live matchers) aborted: nothing it answers can be trusted
   * since (the probe's aborts do not count: it is replaced).
   */
  get mainAborted(): boolean {
    return this.main.aborted !== null;
  }

  /** Words of one sequence's bitmask: ceil(vocabSize / 32). */
  get maskWords(): number {
    return Math.ceil(this.vocabSize / 32);
  }

  static async create(vocab: VocabInfo): Promise<GrammarEngine> {
    const main = await loadXgrammar();
    const info = await main.api.TokenizerInfo.createTokenizerInfo(
      vocab.pieces,
      vocab.vocabType,
      vocab.prependSpace,
      vocab.vocabSize,
      vocab.stopTokenIds,
    );
    const compiler = await main.api.GrammarCompiler.createGrammarCompiler(info, true);
    return new GrammarEngine(main, compiler, vocab.vocabSize, vocab.stopTokenIds);
  }

  /** Compiles (or finds in the cache) a constraint. Throws GrammarError for one that cannot be compiled. */
  compile(spec: ConstraintSpec): Promise<CompiledGrammar> {
    const key = specKey(spec);
    return this.cache.getOrCreate(key, () => this.compileUncached(spec, key));
  }

  private async compileUncached(spec: ConstraintSpec, key: string): Promise<CompiledGrammar> {
    if (key.length > MAX_SPEC_CHARS) {
      throw new GrammarError(`is ${key.length} characters; at most ${MAX_SPEC_CHARS} are accepted`);
    }
    validateSpec(spec);
    const probe = await this.probeCompiler();
    const probed = await probe.inst.captureErrors(() => compileWith(probe.inst, probe.compiler, spec));
    if (!probed.ok) {
      this.probe = null; // the aborted instance is corrupt; the next compile loads a fresh one
      throw new GrammarError(abortReason(probed.stderr, probed.error));
    }
    probed.value.dispose();
    const done = await this.main.captureErrors(() => compileWith(this.main, this.compiler, spec));
    if (!done.ok) throw new GrammarError(abortReason(done.stderr, done.error));
    const grammar = done.value;
    const { main, stopTokenIds } = this;
    return {
      key,
      dispose: () => grammar.dispose(),
      async newMatcher() {
        const m = await main.api.GrammarMatcher.createGrammarMatcher(grammar, stopTokenIds, false);
        return wrapMatcher(m);
      },
    };
  }

  private probeCompiler(): Promise<{ inst: XgInstance; compiler: XgCompiler }> {
    if (this.probe === null) {
      this.probe = (async () => {
        const inst = await loadXgrammar();
        const info = await inst.api.TokenizerInfo.createTokenizerInfo(
          ["<unk>", "a", "</s>"],
          "raw",
          false,
          3,
          [2],
        );
        return { inst, compiler: await inst.api.GrammarCompiler.createGrammarCompiler(info, false) };
      })();
      this.probe.catch(() => {
        this.probe = null;
      });
    }
    return this.probe;
  }
}

export function validateSpec(spec: ConstraintSpec): void {
  switch (spec.type) {
    case "json_schema":
      if (typeof spec.schema !== "boolean" && (spec.schema === null || typeof spec.schema !== "object")) {
        throw new GrammarError("the schema must be a JSON object or a boolean");
      }
      try {
        checkSchemaSupported(spec.schema);
      } catch (err) {
        throw new GrammarError(`schema ${(err as Error).message}`);
      }
      return;
    case "choice":
      if (spec.choices.length === 0) throw new GrammarError("needs at least one choice");
      return;
    case "regex":
      if (spec.pattern.length === 0) throw new GrammarError("the regular expression is empty");
      return;
    case "grammar":
      if (spec.ebnf.trim().length === 0) throw new GrammarError("the grammar is empty");
      return;
    case "tool_calls":
      if (spec.tags.length === 0) throw new GrammarError("needs at least one tag");
      for (const tag of spec.tags) {
        try {
          checkSchemaSupported(tag.schema);
        } catch (err) {
          throw new GrammarError(`schema ${(err as Error).message}`);
        }
      }
      return;
    case "json_object":
      return;
    default:
      throw new GrammarError(`unknown constraint type ${JSON.stringify((spec as { type: unknown }).type)}`);
  }
}

/** JSON as Python's json.dumps writes it by default: ", " and ": ", no newlines (vLLM's outputs look alike). */
const SEPARATORS: [string, string] = [", ", ": "];

async function compileWith(
  inst: XgInstance,
  compiler: XgCompiler,
  spec: ConstraintSpec,
): Promise<XgCompiledGrammar> {
  switch (spec.type) {
    case "json_schema": {
      const grammar = await schemaGrammar(inst, spec.schema);
      if (!grammar.rewritten) {
        const schema = withoutFormatBesidePattern(spec.schema);
        return compiler.compileJSONSchema(JSON.stringify(schema), false, -1, SEPARATORS, true);
      }
      return compiler.compileGrammar(grammar.ebnf);
    }
    case "json_object":
      return compiler.compileJSONSchema(JSON.stringify({ type: "object" }), false, -1, SEPARATORS, false);
    case "regex":
      return compileStructural(compiler, { type: "regex", pattern: spec.pattern });
    case "choice":
      return compileStructural(compiler, {
        type: "or",
        elements: spec.choices.map((value) => ({ type: "const_string", value })),
      });
    case "grammar":
      return compiler.compileGrammar(spec.ebnf);
    case "tool_calls": {
      // A structural tag's json_schema content allows any whitespace (a small model can loop on it): the
      // arguments are given as the compact JSON grammar of their schema instead.
      const tags = [];
      for (const t of spec.tags) {
        const { ebnf: grammar } = await schemaGrammar(inst, t.schema);
        tags.push({ type: "tag", begin: t.begin, content: { type: "grammar", grammar }, end: t.end });
      }
      const once = !spec.parallel;
      return compileStructural(
        compiler,
        spec.required
          ? { type: "tags_with_separator", tags, separator: "\n", at_least_one: true, stop_after_first: once }
          : { type: "triggered_tags", triggers: spec.triggers, tags, stop_after_first: once },
      );
    }
  }
}

/**
 * The compact JSON grammar (EBNF) of a schema, with our rules for its bounded numbers (numeric-bounds.ts) and
 * its length-bounded strings (bounded-strings.ts); `rewritten` is false when it is XGrammar's own.
 */
async function schemaGrammar(
  inst: XgInstance,
  schema: unknown,
): Promise<{ ebnf: string; rewritten: boolean }> {
  const bounded = rewriteNumericBounds(withoutFormatBesidePattern(schema));
  const ebnf = await inst.api.Testings._jsonSchemaToEBNF(
    JSON.stringify(bounded.schema),
    false,
    -1,
    SEPARATORS,
    true,
  );
  const strings = expandBoundedStrings(ebnf);
  return {
    ebnf: applyNumericRules(strings, bounded.rules),
    rewritten: bounded.rules.size > 0 || strings !== ebnf,
  };
}

function compileStructural(
  compiler: XgCompiler,
  format: Record<string, unknown>,
): Promise<XgCompiledGrammar> {
  const c = compiler as XgCompiler & { compileStructuralTag(tag: unknown): Promise<XgCompiledGrammar> };
  return c.compileStructuralTag({ type: "structural_tag", format });
}

function wrapMatcher(m: XgMatcher): GrammarMatcher {
  return {
    async fillNextTokenBitmask(out) {
      const mask = await m.getNextTokenBitmask(); // (maskWords)
      out.set(mask.subarray(0, out.length));
    },
    acceptToken: (id) => m.acceptToken(id),
    rollback: (n) => m.rollBack(n),
    isTerminated: () => m.isTerminated(),
    dispose: () => m.dispose(),
  };
}

/** The vocabulary as XGrammar needs it, from our tokenizer and its tokenizer.json's decoder. */
export async function vocabInfoFor(tokenizer: Tokenizer, vocabSize: number): Promise<VocabInfo> {
  const json = JSON.parse(await readFile(path.join(tokenizer.dir, "tokenizer.json"), "utf8")) as {
    decoder?: unknown;
    normalizer?: unknown;
    pre_tokenizer?: unknown;
  };
  const decoder = JSON.stringify(json.decoder ?? null);
  const vocabType = decoder.includes('"ByteFallback"')
    ? "byte_fallback"
    : decoder.includes('"ByteLevel"')
      ? "byte_level"
      : "raw";
  const front = JSON.stringify([json.normalizer ?? null, json.pre_tokenizer ?? null]);
  const prependSpace = /"Prepend"|"prepend_scheme":"(always|first)"|"add_prefix_space":true/.test(front);
  const pieces: string[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) pieces.push(tokenizer.idToToken(id) ?? "");
  return {
    pieces,
    vocabType,
    prependSpace,
    vocabSize: Math.max(vocabSize, pieces.length),
    stopTokenIds: tokenizer.stopTokenIds,
  };
}
