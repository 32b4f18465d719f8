/**
 * Loads XGrammar's WebAssembly build (@mlc-ai/web-xgrammar). The only file that knows the package.
 *
 * Its bundle is UMD: it expects the CommonJS globals `require` and `__filename` while it is evaluated and
 * when its WebAssembly module is first instantiated, and it publishes its API on `globalThis.xgrammar`.
 * Each import under a distinct query string is a fresh, independent WebAssembly instance.
 *
 * XGrammar reports a bad grammar by aborting its instance (a C++ check failure: the message goes to the
 * instance's stderr, then a RuntimeError "Aborted()" is thrown). An aborted instance is corrupt: a few dozen
 * aborts later it faults on valid input. So user grammars are first compiled in a throwaway "probe" instance
 * (see grammar-engine.ts), whose stderr this file captures to give the reason. Each instance records its first
 * abort (XgInstance.aborted), so that its owner can stop using it.
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

/** The part of XGrammar's API awq-ts uses (see the package's lib/xgrammar.d.ts). */
export interface XgTokenizerInfo {
  getVocabSize(): number;
  dispose(): void;
}
export interface XgCompiledGrammar {
  dispose(): void;
}
export interface XgMatcher {
  acceptToken(tokenId: number): boolean;
  getNextTokenBitmask(): Promise<Int32Array>;
  isTerminated(): boolean;
  rollBack(numTokens: number): void;
  reset(): void;
  dispose(): void;
}
export interface XgCompiler {
  compileJSONSchema(
    schema: string,
    anyWhitespace?: boolean,
    indent?: number,
    separators?: [string, string],
    strictMode?: boolean,
    maxWhitespaceCnt?: number,
  ): Promise<XgCompiledGrammar>;
  compileBuiltinJSONGrammar(): Promise<XgCompiledGrammar>;
  compileGrammar(ebnf: string, rootRule?: string): Promise<XgCompiledGrammar>;
  dispose(): void;
}
export interface XgApi {
  TokenizerInfo: {
    createTokenizerInfo(
      encodedVocab: string[],
      vocabType?: string,
      prependSpaceInTokenization?: boolean,
      vocabSize?: number,
      stopTokenIds?: number[],
    ): Promise<XgTokenizerInfo>;
  };
  GrammarCompiler: {
    createGrammarCompiler(info: XgTokenizerInfo, cacheEnabled?: boolean): Promise<XgCompiler>;
  };
  GrammarMatcher: {
    createGrammarMatcher(
      compiled: XgCompiledGrammar,
      overrideStopTokens?: number[],
      terminateWithoutStopToken?: boolean,
    ): Promise<XgMatcher>;
  };
  Grammar: { builtinJSONGrammar(): Promise<{ dispose(): void }> };
  Testings: {
    _jsonSchemaToEBNF(
      schema: string,
      anyWhitespace?: boolean,
      indent?: number,
      separators?: [string, string],
      strictMode?: boolean,
    ): Promise<string>;
  };
}

/** One WebAssembly instance of XGrammar, with its stderr captured on demand. */
export interface XgInstance {
  readonly api: XgApi;
  /**
   * Whether the instance aborted (or trapped), in any call: its first "Aborted(...)" line or trap message; null
   * while sound. An aborted instance's memory is in an undefined state: nothing it answers can be trusted.
   */
  readonly aborted: string | null;
  /** Runs fn; what the instance printed to stderr meanwhile is returned with its result or error. */
  captureErrors<T>(
    fn: () => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false; error: unknown; stderr: string }>;
}

const require = createRequire(import.meta.url);
const entry = require.resolve("@mlc-ai/web-xgrammar");
let instances = 0;
/** Imports are serialized: each one publishes its API on the same global. */
let loading: Promise<unknown> = Promise.resolve();

/** A fresh XGrammar instance (about 20 MB of WebAssembly memory; ~100 ms). */
export function loadXgrammar(): Promise<XgInstance> {
  const next = loading.then(loadOne);
  loading = next.catch(() => undefined);
  return next;
}

async function loadOne(): Promise<XgInstance> {
  const g = globalThis as Record<string, unknown>;
  const saved = { require: g.require, __filename: g.__filename, xgrammar: g.xgrammar, error: console.error };
  let sink: string[] | null = null;
  let aborted: string | null = null;
  const forward = saved.error;
  // The instance binds console.error once, when its WebAssembly module is instantiated (below); this router
  // stays bound inside it and sends its output to the active capture, else to the real console.error. Emscripten's
  // abort() prints "Aborted(...)" through it before it throws, whoever catches the throw.
  const router = (...args: unknown[]) => {
    const line = args.map(String).join(" ");
    if (aborted === null && line.startsWith("Aborted(")) aborted = line;
    if (sink !== null) sink.push(line);
    else forward(...args);
  };
  g.require = require;
  g.__filename = entry;
  console.error = router;
  try {
    instances += 1;
    await import(`${pathToFileURL(entry).href}?instance=${instances}`);
    const api = g.xgrammar as XgApi | undefined;
    if (api === undefined || typeof api.GrammarCompiler?.createGrammarCompiler !== "function") {
      throw new Error("@mlc-ai/web-xgrammar did not publish its API on globalThis.xgrammar");
    }
    (await api.Grammar.builtinJSONGrammar()).dispose(); // instantiates the WebAssembly module now
    return {
      api,
      get aborted() {
        return aborted;
      },
      async captureErrors(fn) {
        sink = [];
        try {
          return { ok: true, value: await fn() };
        } catch (error) {
          if (isInstanceFault(error)) aborted ??= (error as Error).message;
          return { ok: false, error, stderr: sink.join("\n") };
        } finally {
          sink = null;
        }
      },
    };
  } finally {
    console.error = saved.error;
    restore(g, "require", saved.require);
    restore(g, "__filename", saved.__filename);
    restore(g, "xgrammar", saved.xgrammar);
  }
}

function restore(g: Record<string, unknown>, key: string, value: unknown): void {
  if (value === undefined) delete g[key];
  else g[key] = value;
}

/**
 * Whether an error thrown by a call into an instance left that instance corrupt: Emscripten's abort() (a failed
 * check in XGrammar) throws a WebAssembly.RuntimeError "Aborted(...)", and a trap (an out-of-bounds access,
 * `unreachable`) throws one too; either leaves its memory half-updated. A plain JS error (embind's argument
 * checks, a TypeError in the bindings' JS, our own code) does not touch the instance.
 */
export function isInstanceFault(error: unknown): boolean {
  return error instanceof WebAssembly.RuntimeError;
}

/** XGrammar's reason for an abort: the "[FATAL] file:line: ..." line, without the C++ source location. */
export function abortReason(stderr: string, error: unknown): string {
  const fatal = stderr
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l.startsWith("[FATAL]"));
  if (fatal !== undefined) {
    const text = fatal
      .replace(/^\[FATAL\]\s*\S+:\d+:\s*/, "")
      .replace(/^Check failed: \(.*?\) is false: /, "");
    return text.length > 500 ? `${text.slice(0, 500)}...` : text;
  }
  return error instanceof Error ? error.message : String(error);
}
