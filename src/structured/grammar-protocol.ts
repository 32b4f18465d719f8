/**
 * Messages between the main thread (grammar-pool.ts) and a grammar worker (grammar-worker.ts). A worker owns
 * one XGrammar engine: the compiled grammars and the matchers made from them live there, named by ids the main
 * thread picks. Bitmask rows are written by the worker straight into a SharedArrayBuffer the main thread owns.
 * The worker bumps a shared heartbeat counter as it goes, which the main thread's watchdog reads (a worker that
 * stops making progress is terminated and replaced: see GrammarWorker in grammar-pool.ts).
 */
import type { ConstraintSpec } from "./constraint-spec.js";
import type { VocabInfo } from "./grammar-engine.js";

export interface WorkerInit {
  vocab: VocabInfo;
  /**
   * (1) Int32: bumped (Atomics.add) after each request handled, each token accepted in a fill and each row
   * filled. The main thread reads it to tell a slow worker (still counting) from a hung one.
   */
  heartbeat: SharedArrayBuffer;
  /** Tests only: faults the worker injects (see WorkerFault); never set in production. */
  faults?: WorkerFault[];
}

/**
 * A fault injected for tests (GrammarPoolOptions.testFault, or AWQ_TEST_GRAMMAR_FAULT=kind:marker[,kind:marker]):
 * when a fill reaches the row of a matcher whose grammar's cache key contains `marker` (with `during`: when
 * such a grammar is compiled, when a token of such a matcher is accepted in a fill, when such a matcher is made,
 * or when it is made with a history to replay: a move or a rebuild), the worker
 * - "hang": never answers that fill (it waits forever; later messages queue behind it),
 * - "spin": loops forever on its thread (as a matcher stuck in WebAssembly would),
 * - "exit": exits its thread (code 7),
 * - "crash": throws outside any handler (the thread dies with an 'error' event),
 * - "slow": takes 100 ms more over that row, 500 ms more over that compile (healthy, only slow),
 * - "abort": makes its main XGrammar instance really abort there (a matcher rolled back past its history: a
 *   failed check inside XGrammar, "Aborted()"), as a bug in XGrammar would,
 * - "throw": throws a plain JS error there (as a bug in our own code would; the instance is not touched).
 */
export interface WorkerFault {
  kind: "hang" | "spin" | "exit" | "crash" | "slow" | "abort" | "throw";
  marker: string;
  /** Default "fill". */
  during?: "fill" | "compile" | "accept" | "newMatcher" | "replay";
}

/**
 * The worker's main XGrammar instance aborted (an Emscripten abort or trap: its memory is in an undefined state
 * afterwards), so the worker serves no more: every later request is answered with this notice, untried.
 */
export interface AbortNotice {
  /** What aborted: the operation, the constraint's kind and XGrammar's reason. */
  error: string;
  /** The matcher whose operation aborted (its sequence ends with `error`), if it was one. */
  matcher?: number;
  /** The instance had aborted before this request, which was not tried. */
  before?: boolean;
}

export type WorkerRequest =
  /** Compiles a spec under `key` (the cache key); replies ok or a GrammarError's message. */
  | { op: "compile"; id: number; key: string; spec: ConstraintSpec }
  /** Frees a compiled grammar once every compile of `key` was dropped (matchers made from it keep working). No reply. */
  | { op: "dropGrammar"; key: string }
  /**
   * Makes matcher `matcher` from grammar `key` and advances it by `history` (a matcher moved here from another
   * worker); replies ok, or an error when the grammar rejects the history.
   */
  | { op: "newMatcher"; id: number; key: string; matcher: number; history?: Int32Array }
  /** Frees a matcher. No reply. */
  | { op: "dropMatcher"; matcher: number }
  /**
   * One step's work: first the tokens sampled since the last fill are accepted (`accepts`: matcher, token
   * pairs), then the bitmask row of each matcher in `rows` (matcher, row pairs) is written into `mask` at
   * words [row * maskWords, (row + 1) * maskWords). Replies with the matchers that rejected a token or threw
   * (their rows are left allowing every token), the reason of each that threw (`failed`: the other rows are
   * filled as usual), and the fill time of each row.
   */
  | {
      op: "fill";
      id: number;
      mask: SharedArrayBuffer;
      maskWords: number;
      accepts: Int32Array; // (numAccepts * 2) matcher id, token id
      rows: Int32Array; // (numRows * 2) matcher id, mask row
    };

export type WorkerReply =
  | {
      id: number;
      ok: true;
      rejected?: number[];
      /** Matchers (among `rejected`) that threw while accepting or filling, and why; the worker dropped them. */
      failed?: { matcher: number; error: string }[];
      fillMs?: Float64Array;
      /** The instance aborted during this fill (or before it): the rows of `unfilled` were not filled (they allow every token). */
      aborted?: AbortNotice;
      /** Matchers whose accepts and rows were not handled because the instance aborted (they are intact elsewhere). */
      unfilled?: number[];
    }
  | { id: number; ok: false; error: string; grammarError: boolean; aborted?: AbortNotice };
