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
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ConstraintSpec } from "./constraint-spec.js";
import { GrammarEngine, GrammarError, type GrammarMatcher } from "./grammar-engine.js";
import type { WorkerFault, WorkerInit, WorkerReply, WorkerRequest } from "./grammar-protocol.js";
import { abortReason } from "./xgrammar-runtime.js";

const port = parentPort;
if (port === null) throw new Error("grammar-worker.ts runs as a worker thread");

const { vocab, heartbeat, fault } = workerData as WorkerInit;
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

async function handle(req: WorkerRequest): Promise<WorkerReply | null> {
  printed.length = 0;
  switch (req.op) {
    case "compile":
      if (fault?.during === "compile" && req.key.includes(fault.marker)) await injectFault(fault);
      try {
        await engine.compile(req.spec);
      } catch (err) {
        // A GrammarError already carries XGrammar's reason (the engine captured it); a bare abort gets context.
        const message = err instanceof Error ? err.message : String(err);
        if (!/^Aborted\(/.test(message)) throw err;
        const text = describe("compiling the grammar", req.spec.type, err);
        throw err instanceof GrammarError ? new GrammarError(text) : new Error(text);
      }
      specs.set(req.key, { spec: req.spec, holds: (specs.get(req.key)?.holds ?? 0) + 1 });
      return { id: req.id, ok: true };
    case "dropGrammar": {
      const held = specs.get(req.key);
      if (held !== undefined && --held.holds <= 0) specs.delete(req.key);
      return null;
    }
    case "newMatcher": {
      const spec = specs.get(req.key)?.spec;
      if (spec === undefined) throw new Error(`grammar ${req.key.slice(0, 80)} is not compiled here`);
      let m: GrammarMatcher;
      try {
        m = await (await engine.compile(spec)).newMatcher();
      } catch (err) {
        throw new Error(describe("making the sequence's matcher", spec.type, err));
      }
      const history = req.history ?? new Int32Array(0);
      for (let i = 0; i < history.length; i++) {
        let accepted: boolean;
        try {
          accepted = m.acceptToken(history[i]!);
        } catch (err) {
          m.dispose();
          throw new Error(describe(`replaying output token ${i} (id ${history[i]})`, spec.type, err));
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
    case "dropMatcher":
      matchers.get(req.matcher)?.m.dispose();
      matchers.delete(req.matcher);
      return null;
    case "fill":
      return fill(req);
  }
}

async function fill(req: Extract<WorkerRequest, { op: "fill" }>): Promise<WorkerReply> {
  const rejected: number[] = [];
  const failed: { matcher: number; error: string }[] = [];
  // One matcher's exception ends its own sequence only: it is dropped here, its row allows every token, and
  // the reply names it with the reason; the other rows of the step are filled as usual.
  const fail = (id: number, held: Held, operation: string, err: unknown) => {
    failed.push({ matcher: id, error: describe(operation, held.kind, err, held.tokens) });
    rejected.push(id);
    try {
      held.m.dispose();
    } catch {
      // A matcher in a broken state may not free cleanly; it is forgotten either way.
    }
    matchers.delete(id);
  };
  for (let i = 0; i < req.accepts.length; i += 2) {
    const id = req.accepts[i]!;
    const token = req.accepts[i + 1]!;
    const held = matchers.get(id);
    if (held === undefined) continue;
    printed.length = 0;
    let accepted: boolean;
    try {
      accepted = held.m.acceptToken(token);
    } catch (err) {
      fail(id, held, `accepting token ${token}`, err);
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
  const mask = new Int32Array(req.mask); // (numRows, maskWords), shared with the main thread
  const fillMs = new Float64Array(req.rows.length / 2); // (numRows)
  for (let i = 0; i < req.rows.length; i += 2) {
    const id = req.rows[i]!;
    const row = mask.subarray(req.rows[i + 1]! * req.maskWords, (req.rows[i + 1]! + 1) * req.maskWords);
    const held = matchers.get(id);
    const t0 = performance.now();
    if (held === undefined) {
      row.fill(-1); // a matcher that rejected a token, failed or is gone: the main thread ends its sequence
      if (!rejected.includes(id)) rejected.push(id);
    } else {
      if (fault !== undefined && fault.during !== "compile" && held.key.includes(fault.marker)) {
        await injectFault(fault);
      }
      printed.length = 0;
      try {
        await held.m.fillNextTokenBitmask(row);
      } catch (err) {
        row.fill(-1);
        fail(id, held, "filling the next-token mask", err);
      }
    }
    fillMs[i / 2] = performance.now() - t0;
    progress();
  }
  return { id: req.id, ok: true, rejected, failed, fillMs };
}

/** Tests only (WorkerInit.fault): what a stuck or dying worker does. */
async function injectFault(f: WorkerFault): Promise<void> {
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
              grammarError: err instanceof GrammarError,
            }
          : null;
    }
    progress();
    if (reply !== null) port.postMessage(reply);
  });
});
port.postMessage({ ready: true, maskWords: engine.maskWords });
