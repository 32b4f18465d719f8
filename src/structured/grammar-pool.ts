/**
 * The grammar engine off the main thread: worker threads (grammar-worker.ts) that each own an XGrammar
 * instance. A compiled grammar cannot move between WebAssembly instances, so a grammar and every matcher made
 * from it live on the worker that compiled it. A new grammar goes to a worker with no compile under way and
 * the fewest live matchers (a new worker is started, up to `maxWorkers`, rather than compile beside live
 * matchers): a compile then holds up only the masks of sequences on its own worker, never the event loop.
 * A step's bitmask rows are filled by every worker concerned at once, straight into a SharedArrayBuffer.
 * A grammar with many live matchers is compiled on more workers ahead of need (when its matchers are made, and
 * when a step has many rows of it); sequences move to a replica in the background (a copy of the matcher is made
 * there while the original goes on filling), so neither a compile nor a move ever holds up a step.
 *
 * A worker whose XGrammar instance aborted (see grammar-worker.ts) is retired: it gets no more work, the sequence
 * whose operation aborted ends with that error, and every other matcher that lived there is made again on a
 * serving worker from its grammar and the tokens it accepted (the pool keeps them: replaying them is exact), then
 * filled there; one that cannot be made again ends with an error saying why. The thread is terminated and a fresh
 * one started.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { type ConstraintSpec, MAX_SPEC_CHARS, specKey } from "./constraint-spec.js";
import { GrammarError, type VocabInfo } from "./grammar-engine.js";
import type { WorkerFault, WorkerInit, WorkerReply, WorkerRequest } from "./grammar-protocol.js";
import { PromiseLru } from "./promise-lru.js";

/** A grammar compiled on one worker (`worker`), and on more (`replicas`) when many sequences use it. */
export interface RemoteGrammar {
  readonly key: string;
  readonly spec: ConstraintSpec;
  readonly worker: GrammarWorker;
  /** Workers holding the compiled grammar, `worker` first. */
  readonly replicas: GrammarWorker[];
  /** Replicas being compiled. */
  replicating: number;
  /** Live matchers of this grammar, on all its replicas (copies being made included). */
  matchers: number;
  /** Pushed out of the pool's cache: its workers were told to drop it (a matcher made later compiles it again). */
  evicted: boolean;
}

/** A matcher (one sequence's position in a grammar) living on `worker`. */
export interface RemoteMatcher {
  /** Unique in the pool (a rebuilt matcher keeps its id on its new worker). */
  readonly id: number;
  /** Its worker: another one once it was rebuilt (its worker was retired after an abort). */
  worker: GrammarWorker;
  readonly grammar: RemoteGrammar;
  /** Why the worker could not make it or it failed (its fills then report it rejected); null while fine. */
  error: Error | null;
  /** Every token sent to its worker to accept: with the grammar, its exact state (a rebuild replays them). */
  readonly history: number[];
  /** Being made again on another worker (its own was retired); fills wait for it. */
  rebuilding: Promise<void> | null;
  /** Its worker dropped it (it rejected a token or failed): nothing to rebuild. */
  gone: boolean;
  disposed: boolean;
}

/**
 * A step with more rows of one grammar than this per worker holding it asks for a replica on an idle worker;
 * the rows are then spread over the replicas (a worker fills its rows one after the other).
 */
const ROWS_PER_REPLICA = 8;

/** One row to fill: the matcher, its row in the step's mask, and the tokens it accepted since its last fill. */
export interface FillJob {
  matcher: RemoteMatcher;
  row: number;
  accepts: readonly number[];
}

export interface FillResult {
  /**
   * Matchers that rejected a token, threw (their `error` says why) or are gone; their rows allow every token.
   */
  rejected: Set<number>;
  /** Fill time of each row in ms (measured on its worker). */
  fillMs: number[];
  /**
   * A worker of these rows hung or died: they failed (their matchers' `error` says why). A hung thread can write
   * its rows until it is terminated, so the mask memory of this step should not be reused.
   */
  workerLost: boolean;
}

/** How long a worker may go without progress before it counts as hung (see GrammarPoolOptions). */
export interface WorkerLimits {
  fillTimeoutMs: number;
  compileTimeoutMs: number;
}

type Pending = {
  op: WorkerRequest["op"];
  /** Rows of a fill (for the error message). */
  rows: number;
  resolve: (r: Extract<WorkerReply, { ok: true }>) => void;
  reject: (e: Error) => void;
};

/**
 * One worker thread, seen from the main thread. A watchdog runs while replies are awaited: the worker handles
 * its requests in order, so the oldest unanswered one is the one it works on (drops without a reply are quick),
 * and it must make progress (a reply, or its heartbeat counting a token accepted or a row filled) within
 * fillTimeoutMs (compileTimeoutMs while that request is a compile). When it does not, the worker is taken as
 * hung: every awaited reply is rejected with an error naming the worker, the request and the limit, the thread is
 * terminated, and `onDeath` lets the pool start another. A thread that exits or fails ends the same way at once.
 */
export class GrammarWorker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Compiles sent and not answered. */
  compiling = 0;
  /** Live matchers (copies being made here included). */
  matchers = 0;
  /** The matchers made here, by id (a copy once made; a rebuilt one once moved here). */
  readonly live = new Map<number, RemoteMatcher>();
  /** Why the worker is gone (it hung, exited, failed or was retired); null while it serves. */
  dead: Error | null = null;
  /** Set (and `dead` to it) when XGrammar aborted in it: its matchers are rebuilt elsewhere, not lost. */
  retired: Error | null = null;
  /** The request it hung on (by the watchdog), if that is how it died. */
  private hungOn: number | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  /** The heartbeat's value and the time of the last progress seen. */
  private lastBeat = 0;
  private lastProgress = 0;

  private constructor(
    private readonly worker: Worker,
    /** Names the worker in errors (1, 2, ... in the order the pool started them). */
    readonly index: number,
    private readonly heartbeat: Int32Array, // (1) counted by the worker
    private readonly limits: WorkerLimits,
    private readonly onDeath: (w: GrammarWorker) => void,
  ) {
    worker.on("message", (msg: WorkerReply) => {
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      this.pending.delete(msg.id);
      this.lastProgress = performance.now(); // the next request starts now
      if (this.pending.size === 0) {
        worker.unref();
        this.stopWatchdog();
      }
      if (msg.aborted !== undefined) this.retire(msg);
      if (msg.ok) p.resolve(msg);
      else if (msg.aborted?.before && this.dead !== null)
        p.reject(this.dead); // not tried: as if queued behind
      else p.reject(msg.grammarError ? new GrammarError(msg.error) : new Error(msg.error));
    });
    worker.on("error", (err: Error) =>
      this.fail(new Error(`grammar worker ${index} failed (${err.message})${LOST}`)),
    );
    worker.on("exit", (code) => this.fail(new Error(`grammar worker ${index} exited (code ${code})${LOST}`)));
  }

  static start(
    vocab: VocabInfo,
    index: number,
    limits: WorkerLimits,
    onDeath: (w: GrammarWorker) => void,
    faults: WorkerFault[] = [],
  ): Promise<GrammarWorker> {
    const heartbeat = new SharedArrayBuffer(4);
    const init: WorkerInit = { vocab, heartbeat, faults };
    const worker = new Worker(new URL("./grammar-worker.js", import.meta.url), { workerData: init });
    return new Promise((resolve, reject) => {
      // A start (a WebAssembly instance and the vocabulary: ~0.5 s) that never ends must not hold up compiles.
      const timer = setTimeout(() => {
        worker.terminate().catch(() => undefined);
        reject(new Error(`grammar worker ${index} did not start within ${limits.compileTimeoutMs} ms`));
      }, limits.compileTimeoutMs);
      timer.unref();
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(new Error(`grammar worker ${index} failed to start: ${err.message}`));
      };
      const onExit = (code: number) => {
        clearTimeout(timer);
        reject(new Error(`grammar worker ${index} exited at start (code ${code})`));
      };
      worker.once("error", onError);
      worker.once("exit", onExit);
      worker.once("message", () => {
        clearTimeout(timer);
        worker.off("error", onError);
        worker.off("exit", onExit);
        worker.unref(); // referenced only while a reply is awaited (see request)
        resolve(new GrammarWorker(worker, index, new Int32Array(heartbeat), limits, onDeath));
      });
    });
  }

  request(req: WorkerRequest & { id: number }, rows = 0): Promise<Extract<WorkerReply, { ok: true }>> {
    if (this.dead !== null) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      // Referenced while a reply is awaited (a process waiting only for a compile must not exit), else not.
      if (this.pending.size === 0) {
        this.worker.ref();
        this.lastProgress = performance.now();
        this.lastBeat = Atomics.load(this.heartbeat, 0);
      }
      this.pending.set(req.id, { op: req.op, rows, resolve, reject });
      this.worker.postMessage(req);
      this.armWatchdog();
    });
  }

  /** Whether the worker was stopped because request `id` (its own work) made no progress. */
  diedOn(id: number): boolean {
    return this.hungOn === id;
  }

  /** A request without a reply. */
  send(req: WorkerRequest): void {
    if (this.dead === null) this.worker.postMessage(req);
  }

  newId(): number {
    return this.nextId++;
  }

  /**
   * Stops the thread; what was awaited from it is rejected (through its 'exit' event). Ref'd until it exits (it is
   * unref'd while idle), so an awaited close keeps the event loop alive.
   */
  terminate(): Promise<number> {
    this.worker.ref();
    return this.worker.terminate();
  }

  /** The limit of the request the worker works on (the oldest unanswered one). */
  private limitOf(p: Pending): number {
    return p.op === "compile" ? this.limits.compileTimeoutMs : this.limits.fillTimeoutMs;
  }

  private armWatchdog(): void {
    if (this.watchdog !== null || this.dead !== null) return;
    const head = this.pending.values().next().value;
    if (head === undefined) return;
    const limit = this.limitOf(head);
    // Checked at least four times a limit, so a worker that hangs right after a check is caught by 1.25x it.
    const due = Math.min(limit / 4, this.lastProgress + limit - performance.now());
    this.watchdog = setTimeout(() => this.check(), Math.max(1, due));
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    if (this.watchdog !== null) clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  private check(): void {
    this.watchdog = null;
    const first = this.pending.entries().next().value;
    if (first === undefined || this.dead !== null) return;
    const [headId, head] = first;
    const beat = Atomics.load(this.heartbeat, 0);
    if (beat !== this.lastBeat) {
      // A token accepted, a row filled or a request answered (its reply may still wait for this thread).
      this.lastBeat = beat;
      this.lastProgress = performance.now();
    }
    const limit = this.limitOf(head);
    if (performance.now() - this.lastProgress < limit) {
      this.armWatchdog();
      return;
    }
    const what =
      head.op === "fill"
        ? `filling the masks of ${head.rows} sequence${head.rows === 1 ? "" : "s"}`
        : head.op === "compile"
          ? "compiling a grammar"
          : "making a matcher";
    const option =
      head.op === "compile"
        ? "compileTimeoutMs, AWQ_GRAMMAR_COMPILE_TIMEOUT_MS"
        : "fillTimeoutMs, AWQ_GRAMMAR_FILL_TIMEOUT_MS";
    this.hungOn = headId;
    this.fail(
      new Error(
        `grammar worker ${this.index} hung: no progress for ${limit} ms while ${what} (the grammar pool's ` +
          `${option}); it was terminated and replaced${LOST}`,
      ),
    );
    this.worker.terminate().catch(() => undefined);
  }

  /**
   * XGrammar aborted in the worker (`msg` says so): the sequences this reply ends get their errors first (they
   * are not rebuilt), then the worker is retired: every other awaited reply is rejected with the retirement
   * error (the pool sends that work elsewhere), the pool is told (it rebuilds the matchers that lived here and
   * starts a fresh worker), and the thread is terminated.
   */
  private retire(msg: WorkerReply): void {
    const notice = msg.aborted!;
    const end = (id: number, error: string) => {
      const m = this.live.get(id);
      if (m !== undefined) m.error ??= new Error(error);
    };
    if (notice.matcher !== undefined) end(notice.matcher, notice.error);
    if (msg.ok) {
      for (const f of msg.failed ?? []) end(f.matcher, f.error);
      for (const id of msg.rejected ?? []) {
        const m = this.live.get(id);
        if (m !== undefined) m.gone = true;
      }
    }
    if (this.dead !== null) return;
    this.retired = new Error(
      `grammar worker ${this.index} was retired after XGrammar aborted in it (${notice.error})`,
    );
    this.fail(this.retired);
    this.worker.terminate().catch(() => undefined);
  }

  /** The worker is gone: every awaited reply is rejected with `err`, the pool is told (once). */
  private fail(err: Error): void {
    this.stopWatchdog();
    const first = this.dead === null;
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
    this.worker.unref();
    if (first) this.onDeath(this);
  }
}

/** Moves of one row to a rebuilt matcher within one fill (each after XGrammar aborted in another worker). */
const MAX_ABORT_MOVES = 2;

function remoteMatcher(
  id: number,
  worker: GrammarWorker,
  grammar: RemoteGrammar,
  history: number[],
): RemoteMatcher {
  return { id, worker, grammar, error: null, history, rebuilding: null, gone: false, disposed: false };
}

/** The end of a dead worker's error: what it means for the sequences on it. */
const LOST = ": the grammar state of every sequence on it is lost, and those sequences end with this error";

/** maxWorkers by default: cores - 1, between 2 and 4. */
export function defaultMaxWorkers(): number {
  return Math.min(4, Math.max(2, availableParallelism() - 1));
}

/** fillTimeoutMs by default: see GrammarPoolOptions.fillTimeoutMs. */
export const DEFAULT_FILL_TIMEOUT_MS = 2000;
/** compileTimeoutMs by default: see GrammarPoolOptions.compileTimeoutMs. */
export const DEFAULT_COMPILE_TIMEOUT_MS = 60_000;

export interface GrammarPoolOptions {
  /** Most worker threads (default: cores - 1, between 2 and 4). */
  maxWorkers?: number;
  /** Compiled grammars kept (default 64). */
  cacheSize?: number;
  /**
   * Start every worker with the pool rather than on demand (default: where there are at least two cores per
   * worker): a worker's start (a WebAssembly instance and the vocabulary, ~0.5 s on its own thread, a few ms
   * of the main thread to send the vocabulary) then never lands among the steps of a busy batch.
   */
  startAll?: boolean;
  /**
   * The longest a worker may work on a step's masks (or on making a matcher) without progress, in ms: a row
   * filled or a token accepted counts, so a big batch of slow rows is not cut short. Past it the worker is taken
   * as hung (XGrammar stuck in WebAssembly): the sequences on it end with an error naming the worker and this
   * limit, the thread is terminated and a fresh one started, so a step never waits forever. Default: the
   * environment's AWQ_GRAMMAR_FILL_TIMEOUT_MS, else 2000 (a healthy row takes 0.005-15 ms, a first row after a
   * cold compile under 1 ms, on the demo vocabulary: see docs/benchmarks.md).
   */
  fillTimeoutMs?: number;
  /**
   * The same for a compile (one WebAssembly call, no progress to see): default AWQ_GRAMMAR_COMPILE_TIMEOUT_MS,
   * else 60000 (compiles take 0.2-6 s on a 32k vocabulary). A step with rows on a worker that compiles waits
   * for the compile: the pool compiles on workers without live matchers where it can.
   */
  compileTimeoutMs?: number;
  /**
   * Tests only: faults the workers inject (default: AWQ_TEST_GRAMMAR_FAULT=kind[@during]:marker, comma-separated,
   * else none).
   */
  testFault?: WorkerFault | WorkerFault[];
}

/** A limit from the options, else the environment, else the default; a bad value is refused by name. */
function limitFrom(name: string, option: number | undefined, env: string, fallback: number): number {
  const raw = option ?? (process.env[env] !== undefined ? Number(process.env[env]) : fallback);
  if (typeof raw !== "number" || !Number.isFinite(raw) || raw <= 0) {
    const what = option !== undefined ? `GrammarPoolOptions.${name}` : env;
    throw new Error(`${what} must be a positive number of ms, got ${String(option ?? process.env[env])}`);
  }
  return raw;
}

const FAULT_KINDS = ["hang", "spin", "exit", "crash", "slow", "abort", "throw"];
const FAULT_TIMES = ["fill", "compile", "accept", "newMatcher", "replay"];

function faultsFromEnv(): WorkerFault[] {
  const raw = process.env.AWQ_TEST_GRAMMAR_FAULT;
  if (raw === undefined || raw === "") return [];
  return raw.split(",").map((one) => {
    const [head, ...rest] = one.split(":");
    const [kind, during] = head!.split("@");
    if (
      !FAULT_KINDS.includes(kind!) ||
      (during !== undefined && !FAULT_TIMES.includes(during)) ||
      !rest.length
    ) {
      throw new Error(
        `AWQ_TEST_GRAMMAR_FAULT must be ${FAULT_KINDS.join("|")}[@${FAULT_TIMES.join("|")}]:marker, comma-separated, got ${raw}`,
      );
    }
    return { kind, marker: rest.join(":"), during } as WorkerFault;
  });
}

export class GrammarPool {
  private readonly workers: Promise<GrammarWorker>[] = [];
  private readonly cache: PromiseLru<RemoteGrammar>;
  private nextMatcher = 0;
  private readonly maxWorkers: number;
  private readonly limits: WorkerLimits;
  private readonly faults: WorkerFault[];
  /** Grammars whose every worker was retired, being compiled on a serving one for their matchers' rebuilds. */
  private readonly rehoming = new Map<RemoteGrammar, Promise<GrammarWorker>>();
  /** Workers started so far, dead ones included (names them in errors). */
  private started = 0;
  private closed = false;

  constructor(
    private readonly vocab: VocabInfo,
    opts: GrammarPoolOptions = {},
  ) {
    this.maxWorkers = opts.maxWorkers ?? defaultMaxWorkers();
    this.limits = {
      fillTimeoutMs: limitFrom(
        "fillTimeoutMs",
        opts.fillTimeoutMs,
        "AWQ_GRAMMAR_FILL_TIMEOUT_MS",
        DEFAULT_FILL_TIMEOUT_MS,
      ),
      compileTimeoutMs: limitFrom(
        "compileTimeoutMs",
        opts.compileTimeoutMs,
        "AWQ_GRAMMAR_COMPILE_TIMEOUT_MS",
        DEFAULT_COMPILE_TIMEOUT_MS,
      ),
    };
    const faults = opts.testFault ?? faultsFromEnv();
    this.faults = Array.isArray(faults) ? faults : [faults];
    this.cache = new PromiseLru<RemoteGrammar>(opts.cacheSize ?? 64, (g) => {
      g.evicted = true;
      for (const w of g.replicas) w.send({ op: "dropGrammar", key: g.key });
    });
    if (opts.startAll ?? availableParallelism() >= 2 * this.maxWorkers) {
      for (let i = 0; i < this.maxWorkers; i++) this.startWorker().catch(() => undefined);
    }
  }

  get maskWords(): number {
    return Math.ceil(this.vocab.vocabSize / 32);
  }

  /** Token ids whose acceptance ends a complete grammar. */
  get stopTokenIds(): readonly number[] {
    return this.vocab.stopTokenIds;
  }

  /** Workers started or starting, the dead ones forgotten (for tests). */
  get workerCount(): number {
    return this.workers.length;
  }

  /**
   * Compiles (or finds in the cache) a constraint on a worker. Rejects with GrammarError for a bad one. `key`:
   * specKey(spec), when the caller has it.
   */
  async compile(spec: ConstraintSpec, key = specKey(spec)): Promise<RemoteGrammar> {
    const cached = this.cache.getOrCreate(key, () => this.compileOn(key, spec));
    const grammar = await cached;
    if (grammar.replicas.some((w) => w.dead === null)) return grammar;
    // Its workers were retired and it is being compiled on another one for its matchers: that one serves.
    const rehoming = this.rehoming.get(grammar);
    if (
      rehoming !== undefined &&
      (await rehoming.then(
        () => true,
        () => false,
      ))
    )
      return grammar;
    // Every worker holding it died: its matchers could not be made, so compile it again on a live worker.
    if (this.cache.get(key) === cached) this.cache.delete(key);
    return this.cache.getOrCreate(key, () => this.compileOn(key, spec));
  }

  private async compileOn(key: string, spec: ConstraintSpec): Promise<RemoteGrammar> {
    if (key.length > MAX_SPEC_CHARS) {
      throw new GrammarError(`is ${key.length} characters; at most ${MAX_SPEC_CHARS} are accepted`);
    }
    for (let attempt = 0; ; attempt++) {
      const worker = await this.pickWorker();
      const id = worker.newId();
      worker.compiling += 1;
      try {
        await worker.request({ op: "compile", id, key, spec });
      } catch (err) {
        // The worker died under a request queued before this compile (it hung on another sequence's masks, or
        // exited): the grammar is not at fault, so it is compiled once more on a live worker.
        if (attempt === 0 && worker.dead === err && !worker.diedOn(id)) continue;
        throw err;
      } finally {
        worker.compiling -= 1;
      }
      return { key, spec, worker, replicas: [worker], replicating: 0, matchers: 0, evicted: false };
    }
  }

  /** A worker for a new compile: idle if one is, else a new one (up to maxWorkers), else the least busy. */
  private async pickWorker(): Promise<GrammarWorker> {
    const live: GrammarWorker[] = [];
    for (const w of this.workers) {
      const worker = await w.catch(() => null);
      if (worker !== null && worker.dead === null) live.push(worker);
    }
    // Forget workers that died (their grammars and matchers are gone with them).
    if (live.length < this.workers.length) {
      this.workers.length = 0;
      for (const w of live) this.workers.push(Promise.resolve(w));
      for (const [key, g] of this.cache.entries()) {
        g.then(
          (r) => {
            if (r.worker.dead !== null && this.cache.get(key) === g) this.cache.delete(key);
          },
          () => undefined,
        );
      }
    }
    const busy = (w: GrammarWorker) => w.compiling * 1e6 + w.matchers;
    const best = live.sort((a, b) => busy(a) - busy(b))[0];
    if (best !== undefined && (busy(best) === 0 || live.length >= this.maxWorkers)) return best;
    return this.startWorker();
  }

  private startWorker(): Promise<GrammarWorker> {
    this.started += 1;
    const started = GrammarWorker.start(
      this.vocab,
      this.started,
      this.limits,
      (w) => this.workerDied(w, started),
      this.faults,
    );
    this.workers.push(started);
    started.catch(() => {
      const i = this.workers.indexOf(started);
      if (i >= 0) this.workers.splice(i, 1);
    });
    return started;
  }

  /**
   * A worker hung, exited or failed (its own watchdog or events saw it; what was awaited from it is rejected):
   * it is forgotten, with the grammars held nowhere else, and a fresh worker takes its place. The matchers that
   * lived on it are not made again elsewhere: their fills fail with its error (the hang may be their grammar's
   * doing, and a copy would hang the next worker too), so their requests end with that error.
   * A worker retired after an abort is replaced too, but its matchers are rebuilt elsewhere (rebuildAll).
   */
  private workerDied(worker: GrammarWorker, started: Promise<GrammarWorker>): void {
    const i = this.workers.indexOf(started);
    if (i >= 0) this.workers.splice(i, 1);
    if (worker.retired !== null) {
      // Its grammars stay cached: compile() finds them on the workers their matchers are rebuilt on, or again.
      if (!this.closed) this.startWorker().catch(() => undefined);
      if (!this.closed) this.rebuildAll(worker, worker.retired);
      return;
    }
    for (const [key, g] of this.cache.entries()) {
      g.then(
        (r) => {
          if (r.replicas.every((w) => w.dead !== null) && this.cache.get(key) === g) this.cache.delete(key);
        },
        () => undefined,
      );
    }
    if (!this.closed && worker.dead !== null) this.startWorker().catch(() => undefined);
  }

  /**
   * Makes every matcher that lived on a retired worker again on a serving one: a replica of its grammar, else a
   * worker the grammar is compiled on now (once for all its matchers), advanced by the tokens it accepted. The
   * sequence's fills wait for it; one that cannot be made again ends with `reason` and why.
   */
  private rebuildAll(from: GrammarWorker, reason: Error): void {
    for (const m of from.live.values()) {
      if (m.gone || m.disposed || m.error !== null) continue;
      m.rebuilding = this.rebuild(m, from, reason);
    }
  }

  private async rebuild(m: RemoteMatcher, from: GrammarWorker, reason: Error): Promise<void> {
    const history = Int32Array.from(m.history);
    const { key, spec } = m.grammar;
    try {
      for (let attempt = 0; ; attempt++) {
        if (this.closed) throw new Error("the grammar pool was closed");
        const evicted = m.grammar.evicted;
        const dest = evicted ? await this.pickWorker() : await this.holderFor(m.grammar);
        try {
          // A grammar pushed out of the cache is held on dest only while this matcher is made (as newMatcher).
          if (evicted) dest.request({ op: "compile", id: dest.newId(), key, spec }).catch(() => undefined);
          const made = dest.request({ op: "newMatcher", id: dest.newId(), key, matcher: m.id, history });
          if (evicted) dest.send({ op: "dropGrammar", key });
          await made;
        } catch (err) {
          // dest died or was retired meanwhile by other work (not by this replay): once more elsewhere.
          if (attempt === 0 && dest.dead !== null && err === dest.dead) continue;
          throw err;
        }
        from.live.delete(m.id);
        if (m.disposed) {
          dest.send({ op: "dropMatcher", matcher: m.id }); // disposed meanwhile (counted off `from`)
          return;
        }
        from.matchers -= 1;
        dest.matchers += 1;
        dest.live.set(m.id, m);
        m.worker = dest;
        return;
      }
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      m.error ??= new Error(
        `${reason.message}; this sequence's grammar state could not be rebuilt on another worker: ${why}`,
      );
    } finally {
      m.rebuilding = null;
    }
  }

  /** A serving worker holding `g`: its live replica with the fewest matchers, else one it is compiled on now. */
  private holderFor(g: RemoteGrammar): Promise<GrammarWorker> {
    const live = g.replicas.filter((w) => w.dead === null).sort((a, b) => a.matchers - b.matchers)[0];
    if (live !== undefined) return Promise.resolve(live);
    let homing = this.rehoming.get(g);
    if (homing === undefined) {
      homing = (async () => {
        const worker = await this.pickWorker();
        worker.compiling += 1;
        try {
          await worker.request({ op: "compile", id: worker.newId(), key: g.key, spec: g.spec });
        } finally {
          worker.compiling -= 1;
        }
        // Pushed out of the cache meanwhile: held until the matchers waiting for it were sent (they are sent
        // in this turn of the event loop, before the drop).
        if (g.evicted) setImmediate(() => worker.send({ op: "dropGrammar", key: g.key }));
        else g.replicas.push(worker);
        return worker;
      })();
      this.rehoming.set(g, homing);
      const done = () => {
        if (this.rehoming.get(g) === homing) this.rehoming.delete(g);
      };
      homing.then(done, done);
    }
    return homing;
  }

  /**
   * A matcher for a compiled grammar, on the replica with the fewest matchers. Returned at once: a worker
   * handles its messages in order, so the first fill finds the matcher made (should making it fail, that fill
   * reports it rejected, with `error` set). A grammar with many live matchers gets a replica compiled ahead of
   * need, so that their rows can be spread before the steps that fill them.
   */
  newMatcher(grammar: RemoteGrammar): RemoteMatcher {
    const live = grammar.replicas.filter((w) => w.dead === null);
    const worker = live.sort((a, b) => a.matchers - b.matchers)[0] ?? grammar.worker;
    if (!grammar.evicted) this.replicate(grammar, grammar.matchers + 1);
    const id = this.nextMatcher++;
    worker.matchers += 1;
    grammar.matchers += 1;
    const matcher = remoteMatcher(id, worker, grammar, []);
    worker.live.set(id, matcher);
    // Pushed out of the cache (while it compiled, for a request holding it): held again for this matcher only
    // (the worker's engine still has it compiled, unless its own cache let it go).
    const { evicted, key, spec } = grammar;
    if (evicted) worker.request({ op: "compile", id: worker.newId(), key, spec }).catch(() => undefined);
    worker.request({ op: "newMatcher", id: worker.newId(), key, matcher: id }).catch((err: Error) => {
      // Not tried because XGrammar aborted in that worker before: it is being rebuilt elsewhere.
      if (worker.retired !== null && err === worker.dead) return;
      matcher.error ??= err;
    });
    if (evicted) worker.send({ op: "dropGrammar", key });
    return matcher;
  }

  /**
   * A copy of a matcher on another replica of its grammar, advanced by the sequence's accepted tokens
   * (`history`); resolves once the worker made it. The original stays usable meanwhile (SequenceConstraint
   * switches over between steps), so a move never holds up a step.
   */
  async cloneMatcher(
    m: RemoteMatcher,
    dest: GrammarWorker,
    history: readonly number[],
  ): Promise<RemoteMatcher> {
    const { grammar } = m;
    const id = this.nextMatcher++;
    dest.matchers += 1;
    grammar.matchers += 1;
    try {
      await dest.request({
        op: "newMatcher",
        id: dest.newId(),
        key: grammar.key,
        matcher: id,
        history: Int32Array.from(history),
      });
    } catch (err) {
      dest.matchers -= 1;
      grammar.matchers -= 1;
      throw err;
    }
    const copy = remoteMatcher(id, dest, grammar, [...history]);
    dest.live.set(id, copy);
    return copy;
  }

  disposeMatcher(m: RemoteMatcher): void {
    if (m.disposed) return;
    m.disposed = true;
    m.worker.matchers -= 1;
    m.grammar.matchers -= 1;
    m.worker.live.delete(m.id);
    m.worker.send({ op: "dropMatcher", matcher: m.id });
  }

  /**
   * Spreads one step's matchers evenly over the replicas of their grammars, and asks for a replica where a
   * worker holds many. Returns, per matcher, the worker it should move to (null: stay). Called between steps.
   */
  balance(matchers: readonly RemoteMatcher[]): (GrammarWorker | null)[] {
    const moves: (GrammarWorker | null)[] = matchers.map(() => null);
    const groups = new Map<RemoteGrammar, number[]>();
    matchers.forEach((m, i) => {
      const list = groups.get(m.grammar);
      if (list === undefined) groups.set(m.grammar, [i]);
      else list.push(i);
    });
    for (const [g, rows] of groups) {
      // A grammar evicted from the cache is gone from its workers: its matchers stay where they are.
      if (g.evicted) continue;
      const replicas = g.replicas.filter((w) => w.dead === null);
      this.replicate(g, rows.length);
      if (replicas.length < 2) continue;
      const target = Math.ceil(rows.length / replicas.length);
      const count = new Map(replicas.map((w) => [w, 0]));
      const over: number[] = [];
      for (const i of rows) {
        const c = count.get(matchers[i]!.worker);
        if (c === undefined) continue;
        if (c >= target) over.push(i);
        else count.set(matchers[i]!.worker, c + 1);
      }
      for (const i of over) {
        const dest = replicas.find((w) => count.get(w)! < target);
        if (dest === undefined) break;
        moves[i] = dest;
        count.set(dest, count.get(dest)! + 1);
      }
    }
    return moves;
  }

  /**
   * Compiles a grammar on more workers when `rows` of it would leave more than ROWS_PER_REPLICA on a worker
   * holding it: on as many workers as needed (up to maxWorkers) at once, each on a worker without it, the least
   * busy first (started if there is room). Matchers use a replica once its compile is done.
   */
  private replicate(g: RemoteGrammar, rows: number): void {
    const wanted = Math.min(this.maxWorkers, Math.ceil(rows / ROWS_PER_REPLICA));
    const holding = g.replicas.filter((w) => w.dead === null).length + g.replicating;
    if (holding >= wanted) return;
    for (let i = holding; i < wanted; i++) {
      g.replicating += 1;
      this.compileReplica(g)
        .catch(() => undefined)
        .finally(() => {
          g.replicating -= 1;
        });
    }
  }

  private async compileReplica(g: RemoteGrammar): Promise<void> {
    const live: GrammarWorker[] = [];
    for (const w of this.workers) {
      const worker = await w.catch(() => null);
      if (worker !== null && worker.dead === null) live.push(worker);
    }
    const busy = (w: GrammarWorker) => w.compiling * 1e6 + w.matchers;
    const free = live.filter((w) => !g.replicas.includes(w)).sort((a, b) => busy(a) - busy(b));
    let worker = free.find((w) => w.compiling === 0);
    if (worker === undefined && this.workers.length < this.maxWorkers) worker = await this.startWorker();
    worker ??= free[0];
    if (worker === undefined || g.replicas.includes(worker)) return;
    worker.compiling += 1;
    try {
      await worker.request({ op: "compile", id: worker.newId(), key: g.key, spec: g.spec });
      // Compiled there twice (two replicas asked for at once), or pushed out of the cache meanwhile: the
      // worker holds the key once too often.
      if (g.replicas.includes(worker) || g.evicted) worker.send({ op: "dropGrammar", key: g.key });
      else g.replicas.push(worker);
    } finally {
      worker.compiling -= 1;
    }
  }

  /**
   * Fills the rows of `jobs` into `mask` (a SharedArrayBuffer of (numRows, maskWords) Int32 words), each
   * worker concerned at once; resolves when every row is written. Rows whose worker was retired after an abort
   * (during this fill or before) are filled where their matchers are rebuilt (`round` counts such moves).
   */
  async fill(mask: SharedArrayBuffer, jobs: readonly FillJob[], round = 0): Promise<FillResult> {
    // A matcher being rebuilt elsewhere (its worker was retired) is filled there once made.
    for (;;) {
      const rebuilds = jobs.flatMap((j) => (j.matcher.rebuilding === null ? [] : [j.matcher.rebuilding]));
      if (rebuilds.length === 0) break;
      await Promise.all(rebuilds);
    }
    const result: FillResult = { rejected: new Set(), fillMs: [], workerLost: false };
    const words = new Int32Array(mask); // (numRows, maskWords)
    /** A row that fails: it allows every token, its matcher is rejected (with `err` unless it has a reason). */
    const reject = (j: FillJob, err: Error | null) => {
      words.fill(-1, j.row * this.maskWords, (j.row + 1) * this.maskWords);
      result.rejected.add(j.matcher.id);
      if (err !== null) j.matcher.error ??= err;
    };
    const byWorker = new Map<GrammarWorker, FillJob[]>();
    for (const job of jobs) {
      // Ended already (not made, its worker hung, or it could not be rebuilt): nothing to ask a worker.
      if (job.matcher.error !== null) {
        reject(job, null);
        continue;
      }
      job.matcher.history.push(...job.accepts); // synchronously with the send below: a rebuild sees them
      const list = byWorker.get(job.matcher.worker);
      if (list === undefined) byWorker.set(job.matcher.worker, [job]);
      else list.push(job);
    }
    /** Rows not filled because XGrammar aborted in their worker: filled where their matchers are rebuilt. */
    const moved: FillJob[] = [];
    await Promise.all(
      [...byWorker].map(async ([worker, list]) => {
        const numAccepts = list.reduce((n, j) => n + j.accepts.length, 0);
        const accepts = new Int32Array(numAccepts * 2); // (numAccepts * 2) matcher, token
        const rows = new Int32Array(list.length * 2); // (numRows * 2) matcher, row
        let a = 0;
        list.forEach((j, i) => {
          for (const t of j.accepts) {
            accepts[a++] = j.matcher.id;
            accepts[a++] = t;
          }
          rows[2 * i] = j.matcher.id;
          rows[2 * i + 1] = j.row;
        });
        try {
          const reply = await worker.request(
            { op: "fill", id: worker.newId(), mask, maskWords: this.maskWords, accepts, rows },
            list.length,
          );
          // A matcher that threw ends its own sequence only, with the worker's reason.
          for (const f of reply.failed ?? []) {
            const job = list.find((j) => j.matcher.id === f.matcher);
            if (job !== undefined) job.matcher.error ??= new Error(f.error);
          }
          for (const id of reply.rejected ?? []) {
            result.rejected.add(id);
            const job = list.find((j) => j.matcher.id === id);
            if (job !== undefined) job.matcher.gone = true;
          }
          for (const id of reply.unfilled ?? []) {
            const job = list.find((j) => j.matcher.id === id);
            if (job !== undefined) moved.push(job);
          }
          if (reply.fillMs !== undefined) result.fillMs.push(...reply.fillMs);
        } catch (err) {
          if (worker.retired !== null && err === worker.dead) {
            moved.push(...list); // not tried: XGrammar aborted in that worker before this fill
            return;
          }
          // The worker hung, died (or could not read the request): its sequences end with its error; their rows
          // allow every token meanwhile. A hung thread may still write its rows until it is stopped: the caller
          // should give the next steps other memory (workerLost).
          result.workerLost = true;
          for (const j of list) reject(j, err instanceof Error ? err : new Error(String(err)));
        }
      }),
    );
    const again: FillJob[] = [];
    for (const j of moved) {
      if (j.matcher.gone || j.matcher.error !== null) reject(j, null);
      else if (round >= MAX_ABORT_MOVES) {
        const why = j.matcher.worker.retired?.message ?? "its grammar worker was retired";
        reject(j, new Error(`${why}; this sequence was moved ${round} times in one step already, and ends`));
      } else again.push({ ...j, accepts: [] }); // its accepts are in its history: the rebuild replays them
    }
    if (again.length > 0) {
      const refilled = await this.fill(mask, again, round + 1);
      for (const id of refilled.rejected) result.rejected.add(id);
      result.fillMs.push(...refilled.fillMs);
      result.workerLost ||= refilled.workerLost;
    }
    return result;
  }

  /** Stops every worker (their grammars and matchers go with them). */
  async close(): Promise<void> {
    this.closed = true;
    const workers = await Promise.all(this.workers.map((w) => w.catch(() => null)));
    this.workers.length = 0;
    this.cache.clear();
    await Promise.all(workers.map((w) => w?.terminate()));
  }
}
