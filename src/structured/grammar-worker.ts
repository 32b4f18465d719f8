/**
 * A grammar worker thread: owns one GrammarEngine (XGrammar in WebAssembly) so that compiling a schema
 * (0.6-1.6 s on a 32k vocabulary), making matchers and filling bitmask rows never run on the event loop.
 * Requests are handled one at a time, in the order they arrive (the engine is single-threaded and a fill
 * must see the accepts sent before it).
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ConstraintSpec } from "./constraint-spec.js";
import { GrammarEngine, GrammarError, type GrammarMatcher } from "./grammar-engine.js";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./grammar-protocol.js";

const port = parentPort;
if (port === null) throw new Error("grammar-worker.ts runs as a worker thread");

const { vocab } = workerData as WorkerInit;
const engine = await GrammarEngine.create(vocab);
/**
 * Specs by cache key, with how many compiles of the key were not yet dropped: the main thread's cache can push
 * a grammar out while it compiles and compile the key anew meanwhile, so the first one's drop can come after
 * the second one's compile. The engine's own LRU cache holds the compiled grammars (and recompiles when evicted).
 */
const specs = new Map<string, { spec: ConstraintSpec; holds: number }>();
const matchers = new Map<number, GrammarMatcher>();

async function handle(req: WorkerRequest): Promise<WorkerReply | null> {
  switch (req.op) {
    case "compile":
      await engine.compile(req.spec);
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
      const m = await (await engine.compile(spec)).newMatcher();
      for (const token of req.history ?? []) {
        if (!m.acceptToken(token)) {
          m.dispose();
          throw new Error(`the grammar rejects token ${token} of the sequence's output`);
        }
      }
      matchers.set(req.matcher, m);
      return { id: req.id, ok: true };
    }
    case "dropMatcher":
      matchers.get(req.matcher)?.dispose();
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
  const fail = (id: number, err: unknown) => {
    failed.push({ matcher: id, error: err instanceof Error ? err.message : String(err) });
    rejected.push(id);
    try {
      matchers.get(id)?.dispose();
    } catch {
      // A matcher in a broken state may not free cleanly; it is forgotten either way.
    }
    matchers.delete(id);
  };
  for (let i = 0; i < req.accepts.length; i += 2) {
    const id = req.accepts[i]!;
    const m = matchers.get(id);
    if (m === undefined) continue;
    let accepted: boolean;
    try {
      accepted = m.acceptToken(req.accepts[i + 1]!);
    } catch (err) {
      fail(id, err);
      continue;
    }
    if (!accepted) {
      rejected.push(id);
      m.dispose();
      matchers.delete(id);
    }
  }
  const mask = new Int32Array(req.mask); // (numRows, maskWords), shared with the main thread
  const fillMs = new Float64Array(req.rows.length / 2); // (numRows)
  for (let i = 0; i < req.rows.length; i += 2) {
    const id = req.rows[i]!;
    const row = mask.subarray(req.rows[i + 1]! * req.maskWords, (req.rows[i + 1]! + 1) * req.maskWords);
    const m = matchers.get(id);
    const t0 = performance.now();
    if (m === undefined) {
      row.fill(-1); // a matcher that rejected a token, failed or is gone: the main thread ends its sequence
      if (!rejected.includes(id)) rejected.push(id);
    } else {
      try {
        await m.fillNextTokenBitmask(row);
      } catch (err) {
        row.fill(-1);
        fail(id, err);
      }
    }
    fillMs[i / 2] = performance.now() - t0;
  }
  return { id: req.id, ok: true, rejected, failed, fillMs };
}

let queue: Promise<void> = Promise.resolve();
port.on("message", (req: WorkerRequest) => {
  queue = queue.then(async () => {
    let reply: WorkerReply | null;
    try {
      reply = await handle(req);
    } catch (err) {
      if (!("id" in req)) return;
      reply = {
        id: req.id,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
        grammarError: err instanceof GrammarError,
      };
    }
    if (reply !== null) port.postMessage(reply);
  });
});
port.postMessage({ ready: true, maskWords: engine.maskWords });
