/**
 * A grammar worker thread: owns one GrammarEngine (XGrammar in WebAssembly) so that compiling a schema
 * (0.6-1.6 s on a 32k vocabulary), making matchers and filling bitmask rows never run on the event loop.
 * Requests are handled one at a time, in the order they arrive (the engine is single-threaded and a fill
 * must see the accepts sent before it). A shared heartbeat counts the work done, for the main thread's watchdog.
 *
 * XGrammar reports a failed check by aborting its WebAssembly instance: the exception says only "Aborted()", the
 * reason goes to stderr. Everything the instance prints is recorded here (and still printed), so that an error
 * names the operation (compile, making a matcher, accepting a token, filling a mask), the constraint's kind and
 * XGrammar's own reason.
 *
 * An abort in the main instance (filling a mask, accepting a token, making a matcher, or a compile there) leaves
 * its memory in an undefined state: the operation's sequence ends with its error, and the worker touches the
 * instance no more. The reply says so (AbortNotice, with the rows it did not fill); every later request is
 * answered with the notice, untried; the pool retires the worker and rebuilds its other matchers elsewhere. A plain
 * JS error (our own code, the bindings' argument checks) ends only its own operation: the worker serves on.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ConstraintSpec } from "./constraint-spec.js";
import { GrammarEngine, GrammarError, type GrammarMatcher } from "./grammar-engine.js";
import type { AbortNotice, WorkerFault, WorkerInit, WorkerReply, WorkerRequest } from "./grammar-protocol.js";
import { abortReason, isInstanceFault } from "./xgrammar-runtime.js";

const port = parentPort;
if (port === null) throw new Error("grammar-worker.ts runs as a worker thread");

const { vocab, heartbeat, faults = [] } = workerData as WorkerInit;
const beat = new Int32Array(heartbeat); // (1)
const progress = () => Atomics.add(beat, 0, 1);

/**
 * The last lines XGrammar printed (console.error), cleared before each operation. Installed before the engine
 * loads: each XGrammar instance binds the console.error it finds then.
 */
const printed: string[] = [];
const print = console.error;
console.error = (...args: unknown[]) => {
  if (printed.length < 20) printed.push(args.map(String).join(" ").slice(0, 2000));
  print(...args);
};

const engine = await GrammarEngine.create(vocab);
/**
 * Specs by cache key, with how many compiles of the key were not yet dropped: the main thread's cache can push
 * a grammar out while it compiles and compile the key anew meanwhile, so the first one's drop can come after
 * the second one's compile. The engine's own LRU cache holds the compiled grammars (and recompiles when evicted).
 */
const specs = new Map<string, { spec: ConstraintSpec; holds: number }>();
/** A live matcher, its constraint's kind and how many tokens it accepted (for error messages), its key. */
interface Held {
  m: GrammarMatcher;
  kind: string;
  key: string;
  tokens: number;
}
const matchers = new Map<number, Held>();
/** The first abort of the main instance (its error text); null while it is sound. Nothing uses it afterwards. */
let broken: string | null = null;

/** The main instance aborted: thrown by an operation, answered with an AbortNotice. */
class InstanceAborted extends Error {
  constructor(
    message: string,
    readonly matcher: number | undefined,
    readonly grammarError: boolean,
  ) {
    super(message);
  }
}

/** Whether `err`, thrown by a call into the main instance, means that instance aborted (see isInstanceFault). */
function mainAborted(err: unknown): boolean {
  return isInstanceFault(err) || engine.mainAborted;
}

/**
 * What went wrong in XGrammar, as a sentence: the operation, the constraint's kind, and XGrammar's reason (its
 * "[FATAL]" line) where it gave one; a bare "Aborted()" says so.
 */
function describe(operation: string, kind: string, err: unknown, outputTokens?: number): string {
  const raw = err instanceof Error ? err.message : String(err);
  const reason = abortReason(printed.join("\n"), err);
  const aborted = /^Aborted\(/.test(raw);
  const why =
    reason === raw && aborted
      ? "XGrammar's WebAssembly instance aborted without printing a reason (Aborted())"
      : reason;
  const after = outputTokens === undefined ? "" : `, after ${outputTokens} output tokens`;
  return `XGrammar failed while ${operation} of a ${kind} constraint${after}: ${why}`;
}

/** The test fault for this operation on a grammar with this key, if any (WorkerInit.faults). */
function faultFor(during: NonNullable<WorkerFault["during"]>, key: string): WorkerFault | undefined {
  return faults.find((f) => (f.during ?? "fill") === during && key.includes(f.marker));
}

async function handle(req: WorkerRequest): Promise<WorkerReply | null> {
  printed.length = 0;
  if (broken !== null) return untried(req, broken);
  switch (req.op) {
    case "compile": {
      const fault = faultFor("compile", req.key);
      if (fault !== undefined && fault.kind !== "abort" && fault.kind !== "throw") await injectFault(fault);
      try {
        await engine.compile(req.spec);
        if (fault !== undefined)
          await injectFault(fault, await (await engine.compile(req.spec)).newMatcher());
      } catch (err) {
        // A GrammarError already carries XGrammar's reason (the engine captured it); a bare abort gets context.
        const message = err instanceof Error ? err.message : String(err);
        let text = message;
        if (/^Aborted\(/.test(message)) text = describe("compiling the grammar", req.spec.type, err);
        // The probe instance's aborts are the engine's business (it replaces the probe); the main one's are ours.
        if (engine.mainAborted) {
          broken = text;
          throw new InstanceAborted(text, undefined, err instanceof GrammarError);
        }
        if (text === message) throw err;
        throw err instanceof GrammarError ? new GrammarError(text) : new Error(text);
      }
      specs.set(req.key, { spec: req.spec, holds: (specs.get(req.key)?.holds ?? 0) + 1 });
      return { id: req.id, ok: true };
    }
    case "dropGrammar": {
      const held = specs.get(req.key);
      if (held !== undefined && --held.holds <= 0) specs.delete(req.key);
      return null;
    }
    case "newMatcher":
      return newMatcher(req);
    case "dropMatcher": {
      const held = matchers.get(req.matcher);
      matchers.delete(req.matcher);
      try {
        held?.m.dispose();
      } catch (err) {
        if (held !== undefined && mainAborted(err)) broken = describe("freeing a matcher", held.kind, err);
      }
      return null;
    }
    case "fill":
      return fill(req);
  }
}

/** The answer to a request that came after the main instance aborted: nothing is tried. */
function untried(req: WorkerRequest, error: string): WorkerReply | null {
  const aborted: AbortNotice = { error, before: true };
  if (req.op === "fill") {
    const mask = new Int32Array(req.mask); // (numRows, maskWords)
    const unfilled: number[] = [];
    for (let i = 0; i < req.rows.length; i += 2) {
      mask.fill(-1, req.rows[i + 1]! * req.maskWords, (req.rows[i + 1]! + 1) * req.maskWords);
      unfilled.push(req.rows[i]!);
    }
    return { id: req.id, ok: true, rejected: [], failed: [], unfilled, aborted };
  }
  if (!("id" in req)) return null;
  return { id: req.id, ok: false, error, grammarError: false, aborted };
}

async function newMatcher(req: Extract<WorkerRequest, { op: "newMatcher" }>): Promise<WorkerReply> {
  const spec = specs.get(req.key)?.spec;
  if (spec === undefined) throw new Error(`grammar ${req.key.slice(0, 80)} is not compiled here`);
  const history = req.history ?? new Int32Array(0);
  const fault = faultFor(history.length > 0 ? "replay" : "newMatcher", req.key);
  const failed = (operation: string, err: unknown): never => {
    const text = describe(operation, spec.type, err);
    if (!mainAborted(err)) throw new Error(text);
    broken = text;
    throw new InstanceAborted(text, req.matcher, false);
  };
  let m: GrammarMatcher;
  try {
    m = await (await engine.compile(spec)).newMatcher();
  } catch (err) {
    return failed("making the sequence's matcher", err);
  }
  if (fault !== undefined) {
    try {
      await injectFault(fault, m);
    } catch (err) {
      if (!mainAborted(err)) m.dispose();
      return failed(
        history.length > 0 ? "replaying the sequence's output" : "making the sequence's matcher",
        err,
      );
    }
  }
  for (let i = 0; i < history.length; i++) {
    let accepted: boolean;
    try {
      accepted = m.acceptToken(history[i]!);
    } catch (err) {
      if (!mainAborted(err)) m.dispose();
      return failed(`replaying output token ${i} (id ${history[i]})`, err);
    }
    if (!accepted) {
      m.dispose();
      throw new Error(`the grammar rejects token ${history[i]} of the sequence's output`);
    }
    progress();
  }
  matchers.set(req.matcher, { m, kind: spec.type, key: req.key, tokens: history.length });
  return { id: req.id, ok: true };
}

async function fill(req: Extract<WorkerRequest, { op: "fill" }>): Promise<WorkerReply> {
  const rejected: number[] = [];
  const failed: { matcher: number; error: string }[] = [];
  const mask = new Int32Array(req.mask); // (numRows, maskWords), shared with the main thread
  const rowAt = (r: number) => mask.subarray(r * req.maskWords, (r + 1) * req.maskWords);
  const fillMs = new Float64Array(req.rows.length / 2); // (numRows)
  /**
   * One matcher threw. A plain error ends its own sequence only: it is dropped here, its row allows every token,
   * and the reply names it with the reason; the other rows of the step are filled as usual. An abort of the
   * instance ends its sequence too, and the fill stops there: returns the reply, the rows from `nextRow` on
   * unfilled (they allow every token; the pool fills them elsewhere).
   */
  const fail = (
    id: number,
    held: Held,
    operation: string,
    err: unknown,
    nextRow: number,
  ): WorkerReply | null => {
    const error = describe(operation, held.kind, err, held.tokens);
    failed.push({ matcher: id, error });
    rejected.push(id);
    matchers.delete(id);
    if (mainAborted(err)) {
      broken = error;
      const unfilled: number[] = [];
      for (let i = 2 * nextRow; i < req.rows.length; i += 2) {
        rowAt(req.rows[i + 1]!).fill(-1);
        if (!rejected.includes(req.rows[i]!)) unfilled.push(req.rows[i]!);
      }
      const filled = fillMs.slice(0, nextRow); // the rows tried before the abort (that one included)
      return {
        id: req.id,
        ok: true,
        rejected,
        failed,
        fillMs: filled,
        unfilled,
        aborted: { error, matcher: id },
      };
    }
    try {
      held.m.dispose();
    } catch {
      // A matcher in a broken state may not free cleanly; it is forgotten either way.
    }
    return null;
  };
  for (let i = 0; i < req.accepts.length; i += 2) {
    const id = req.accepts[i]!;
    const token = req.accepts[i + 1]!;
    const held = matchers.get(id);
    if (held === undefined) continue;
    printed.length = 0;
    let accepted: boolean;
    try {
      const fault = faultFor("accept", held.key);
      if (fault !== undefined) await injectFault(fault, held.m);
      accepted = held.m.acceptToken(token);
    } catch (err) {
      const stop = fail(id, held, `accepting token ${token}`, err, 0);
      if (stop !== null) return stop;
      continue;
    }
    progress();
    if (!accepted) {
      rejected.push(id);
      held.m.dispose();
      matchers.delete(id);
    } else {
      held.tokens += 1;
    }
  }
  for (let i = 0; i < req.rows.length; i += 2) {
    const id = req.rows[i]!;
    const row = rowAt(req.rows[i + 1]!);
    const held = matchers.get(id);
    const t0 = performance.now();
    if (held === undefined) {
      row.fill(-1); // a matcher that rejected a token, failed or is gone: the main thread ends its sequence
      if (!rejected.includes(id)) rejected.push(id);
    } else {
      printed.length = 0;
      try {
        const fault = faultFor("fill", held.key);
        if (fault !== undefined) await injectFault(fault, held.m);
        await held.m.fillNextTokenBitmask(row);
      } catch (err) {
        row.fill(-1);
        fillMs[i / 2] = performance.now() - t0;
        const stop = fail(id, held, "filling the next-token mask", err, i / 2 + 1);
        if (stop !== null) return stop;
      }
    }
    fillMs[i / 2] = performance.now() - t0;
    progress();
  }
  return { id: req.id, ok: true, rejected, failed, fillMs };
}

/** Tests only (WorkerInit.faults): what a stuck, dying or failing worker does; `m`: the matcher at hand. */
async function injectFault(f: WorkerFault, m?: GrammarMatcher): Promise<void> {
  switch (f.kind) {
    case "hang":
      await new Promise<never>(() => undefined);
      return;
    case "slow": // a healthy but slow row (100 ms) or compile (500 ms)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, f.during === "compile" ? 500 : 100);
      return;
    case "spin":
      for (;;) Atomics.load(beat, 0); // no progress counted: busy forever
    case "exit":
      process.exit(7);
      return;
    case "crash":
      setImmediate(() => {
        throw new Error("injected grammar worker crash");
      });
      await new Promise<never>(() => undefined);
      return;
    case "abort":
      // A real failed check inside XGrammar: rolling back more tokens than the matcher holds aborts the instance.
      m?.rollback(1_000_000);
      throw new Error("injected abort: XGrammar did not abort");
    case "throw":
      throw new Error("injected plain JS error");
  }
}

let queue: Promise<void> = Promise.resolve();
port.on("message", (req: WorkerRequest) => {
  queue = queue.then(async () => {
    let reply: WorkerReply | null;
    try {
      reply = await handle(req);
    } catch (err) {
      reply =
        "id" in req
          ? {
              id: req.id,
              ok: false,
              error: err instanceof Error ? err.message : String(err),
              grammarError:
                err instanceof GrammarError || (err instanceof InstanceAborted && err.grammarError),
              ...(err instanceof InstanceAborted
                ? { aborted: { error: err.message, matcher: err.matcher } }
                : {}),
            }
          : null;
    }
    progress();
    if (reply !== null) port.postMessage(reply);
  });
});
port.postMessage({ ready: true, maskWords: engine.maskWords });
