/**
 * Data parallelism (vLLM's --data-parallel-size): N engine replicas, each with its own backend and KV cache,
 * behind one EngineClient, so the server's routes do not change. Each request goes to one replica:
 *
 *   - prefix-cache affinity: the chained hashes of the prompt's full KV blocks are remembered with the
 *     replica that computed them; a prompt sharing a prefix goes where its longest known prefix went, so that
 *     replica's prefix cache serves it (SGLang's cache-aware routing, approximated by block hashes);
 *   - load: otherwise (or when the affine replica is overloaded) the replica with the fewest running +
 *     waiting requests, ties taken in turn.
 *
 * A replica's failure ends only the requests it runs (each Engine ends a failed step's requests itself);
 * abort finds the replica by request id; shutdown closes every replica.
 */
import { randomUUID } from "node:crypto";
import type { Backend } from "../backend/backend.js";
import type { KvCacheDtype } from "../backend/kv-cache-dtype.js";
import type { ConstraintSpec } from "../structured/constraint-spec.js";
import type { Engine } from "./engine.js";
import {
  type EngineClient,
  EngineClosedError,
  type EngineRequest,
  type EngineStats,
  InvalidParamError,
  type RequestOutput,
} from "./types.js";

export interface ReplicaRouterOptions {
  /** Prefix hashes remembered (least recently used dropped first). */
  maxAffinityEntries?: number;
  /**
   * The affine replica is passed over when its load exceeds the least loaded one's by more than this many
   * requests AND by more than `balanceRelThreshold` times (SGLang's cache-aware router's two thresholds).
   */
  balanceAbsThreshold?: number;
  balanceRelThreshold?: number;
}

/** Prompt blocks hashed for affinity at most (a longer shared prefix still matches on its first blocks). */
const MAX_AFFINITY_BLOCKS = 256;

/**
 * Chained hashes of the full `blockSize`-token blocks of `tokens` (FNV-1a over the ids, seeded by the previous
 * block's hash): equal keys mean equal prefixes, as the block manager's own chained hashes do.
 */
export function prefixBlockKeys(tokens: readonly number[], blockSize: number): string[] {
  const keys: string[] = [];
  const blocks = Math.min(MAX_AFFINITY_BLOCKS, Math.floor(tokens.length / blockSize));
  let hi = 0x811c9dc5;
  let lo = 0x01000193;
  for (let b = 0; b < blocks; b++) {
    for (let i = b * blockSize; i < (b + 1) * blockSize; i++) {
      const id = tokens[i];
      hi = Math.imul(hi ^ (id & 0xffff), 0x01000193) >>> 0;
      lo = Math.imul(lo ^ (id >>> 16) ^ hi, 0x01000193) >>> 0;
    }
    keys.push(`${hi.toString(36)}.${lo.toString(36)}.${b}`);
  }
  return keys;
}

export class ReplicaRouter implements EngineClient {
  readonly maxModelLen: number;
  readonly blockSize: number;
  readonly maxNumSeqs: number;
  readonly maxNumBatchedTokens: number;
  readonly kvReserveTokens: number;
  /** Whether the replicas chain steady decode steps (Engine.chainsSteps; they all run the same backend). */
  readonly chainsSteps: boolean;
  /** Whether the replicas handle a step's outputs while the next one runs (Engine.overlapOutputs; all alike). */
  readonly overlapOutputs: boolean;
  readonly kvCacheDtype: KvCacheDtype;
  readonly maxPromptLogprobs: number;
  readonly eosTokenIds: readonly number[];
  /** requestId -> the replica running it. */
  private readonly owners = new Map<string, number>();
  /** Prefix block hash -> the replica that last computed that prefix (Map order = least recently used first). */
  private readonly affinity = new Map<string, number>();
  private readonly maxAffinityEntries: number;
  private readonly balanceAbs: number;
  private readonly balanceRel: number;
  private nextTie = 0;
  private closed = false;

  constructor(
    readonly replicas: readonly Engine[],
    opts: ReplicaRouterOptions = {},
  ) {
    if (replicas.length === 0) throw new Error("ReplicaRouter needs at least one engine replica");
    const first = replicas[0];
    this.maxModelLen = first.maxModelLen;
    this.blockSize = first.blockSize;
    this.maxNumSeqs = first.maxNumSeqs;
    this.maxNumBatchedTokens = first.maxNumBatchedTokens;
    this.kvReserveTokens = first.kvReserveTokens;
    this.chainsSteps = replicas.every((r) => r.chainsSteps);
    this.overlapOutputs = replicas.every((r) => r.overlapOutputs);
    this.kvCacheDtype = first.kvCacheDtype;
    this.maxPromptLogprobs = Math.min(...replicas.map((r) => r.maxPromptLogprobs));
    this.eosTokenIds = first.eosTokenIds;
    this.maxAffinityEntries = opts.maxAffinityEntries ?? 65536;
    this.balanceAbs = opts.balanceAbsThreshold ?? 32;
    this.balanceRel = opts.balanceRelThreshold ?? 1.5;
  }

  /** Replica 0's backend (every replica runs the same kind): for its name. */
  get backend(): Backend {
    return this.replicas[0].backend;
  }

  /** Requests a replica holds now: running + waiting. */
  private load(index: number): number {
    const s = this.replicas[index].stats();
    return s.running + s.waiting;
  }

  /** The replica for a prompt: its longest remembered prefix's, unless overloaded; else the least loaded. */
  route(promptTokenIds: readonly number[]): number {
    const loads = this.replicas.map((_, i) => this.load(i));
    const least = Math.min(...loads);
    const keys = prefixBlockKeys(promptTokenIds, this.blockSize);
    let chosen = -1;
    for (let b = keys.length - 1; b >= 0 && chosen < 0; b--) {
      const holder = this.affinity.get(keys[b]);
      if (holder === undefined) continue;
      const overloaded = loads[holder] - least > this.balanceAbs && loads[holder] > least * this.balanceRel;
      if (!overloaded) chosen = holder;
      break;
    }
    if (chosen < 0) {
      // Least loaded; among equals, the next in turn (so an idle pool spreads sequential requests too).
      const n = this.replicas.length;
      for (let k = 0; k < n && chosen < 0; k++) {
        const i = (this.nextTie + k) % n;
        if (loads[i] === least) chosen = i;
      }
      this.nextTie = (chosen + 1) % n;
    }
    for (const key of keys) {
      this.affinity.delete(key);
      this.affinity.set(key, chosen);
    }
    for (const key of this.affinity.keys()) {
      if (this.affinity.size <= this.maxAffinityEntries) break;
      this.affinity.delete(key);
    }
    return chosen;
  }

  generate(req: EngineRequest): AsyncIterable<RequestOutput> {
    if (this.closed) throw new EngineClosedError("the engine is shutting down and takes no new requests");
    const requestId = req.requestId ?? randomUUID();
    if (this.owners.has(requestId)) {
      throw new InvalidParamError("request_id", `request id ${requestId} is already in use`);
    }
    const index = this.route(req.promptTokenIds);
    const stream = this.replicas[index].generate({ ...req, requestId });
    this.owners.set(requestId, index);
    return this.tracked(requestId, index, stream);
  }

  /**
   * The replica's stream, its outputs stamped with the replica's index; the request's owner is forgotten once
   * it ends (finished, or left early).
   */
  private tracked(
    requestId: string,
    engineIndex: number,
    stream: AsyncIterable<RequestOutput>,
  ): AsyncIterable<RequestOutput> {
    const forget = () => this.owners.delete(requestId);
    return {
      [Symbol.asyncIterator]: () => {
        const inner = stream[Symbol.asyncIterator]();
        return {
          next: async () => {
            const result = await inner.next();
            if (result.done) {
              forget();
              return result;
            }
            if (result.value.finished) forget();
            return { done: false, value: { ...result.value, engineIndex } };
          },
          return: async () => {
            forget();
            return (await inner.return?.()) ?? { value: undefined, done: true };
          },
        };
      },
    };
  }

  abort(requestId: string): void {
    const index = this.owners.get(requestId);
    if (index === undefined) return;
    this.owners.delete(requestId);
    this.replicas[index].abort(requestId);
  }

  /** The replicas together (their KV caches side by side). */
  stats(): EngineStats {
    const all = this.engineStats();
    const sum = (read: (s: EngineStats) => number | undefined) => all.reduce((t, s) => t + (read(s) ?? 0), 0);
    const numBlocks = sum((s) => s.numBlocks);
    return {
      running: sum((s) => s.running),
      waiting: sum((s) => s.waiting),
      kvCacheUsage: numBlocks > 0 ? sum((s) => s.kvCacheUsage * s.numBlocks) / numBlocks : 0,
      numBlocks,
      freeBlocks: sum((s) => s.freeBlocks),
      numPreemptions: sum((s) => s.numPreemptions),
      prefixCacheQueries: sum((s) => s.prefixCacheQueries),
      prefixCacheHits: sum((s) => s.prefixCacheHits),
      enablePrefixCaching: all[0].enablePrefixCaching,
    };
  }

  /** Each replica's stats; the index is vLLM's `engine` label. */
  engineStats(): EngineStats[] {
    return this.replicas.map((r) => r.stats());
  }

  onIteration(listener: (numTokens: number, engineIndex: number) => void): () => void {
    const stops = this.replicas.map((r, i) => r.onIteration((numTokens) => listener(numTokens, i)));
    return () => {
      for (const stop of stops) stop();
    };
  }

  /** Compiled on every replica (each has its own grammar cache), so whichever one gets the request starts at once. */
  async compileStructuredOutput(spec: ConstraintSpec): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.compileStructuredOutput(spec)));
  }

  /** Resolves when no replica has work left. */
  async idle(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.idle()));
  }

  async shutdown(opts: { graceMs?: number } = {}): Promise<void> {
    this.closed = true;
    await Promise.all(this.replicas.map((r) => r.shutdown(opts)));
  }
}
