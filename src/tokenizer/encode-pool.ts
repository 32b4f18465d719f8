/**
 * Tokenization off the event loop. Encoding is slow on long texts (~100 KB/s for the Llama tokenizer in
 * @huggingface/tokenizers; ~3 MB/s cold through our SentencePiece-BPE encoder), and a server that encodes on its
 * one JS thread goes deaf while it does: /health, other clients' streams, everything. So texts longer than
 * `inlineMaxChars` are encoded by worker threads that each hold their own copy of the tokenizer (TGI's validation
 * workers do the same); short ones are encoded in place (well under a millisecond with the library up to 2K
 * characters; ~1-2 ms with the fast encoder up to its 16K). Results equal `tokenizer.encode` exactly.
 *
 * `minTokenCount` is a lower bound on a text's token count that costs one pass over its bytes, so a text
 * that can never fit the context is refused before anyone spends seconds encoding it.
 */
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import type { EncodeOptions, Tokenizer } from "./tokenizer.js";

export interface EncodePoolOptions {
  /** Worker threads (default: cores - 1, between 1 and 4). 0 encodes everything in place. */
  workers?: number;
  /**
   * Texts up to this many UTF-16 code units are encoded on the calling thread (default 2048, and 16384 where the
   * tokenizer has the fast SentencePiece-BPE encoder: a 4096-token prompt, ~1 ms).
   */
  inlineMaxChars?: number;
}

interface Pending {
  resolve: (ids: number[]) => void;
  reject: (err: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  /** Ids of the jobs sent and not answered: the least loaded worker gets the next one. */
  jobs: Set<number>;
}

type WorkerReply = { ready: true } | { id: number; ids: Int32Array } | { id: number; error: string };

/** Normalizers that can turn several input bytes into one (NFKC: "Ａ" -> "A"), which weakens the bound. */
const SHRINKING_NORMALIZER = /"(NFKC|NFKD|BertNormalizer|StripAccents|Precompiled|Lowercase)"/;

export class EncodePool {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly workers: PoolWorker[],
    private readonly inlineMaxChars: number,
    /** No token of the vocabulary stands for more input bytes than this. */
    private readonly maxBytesPerToken: number,
  ) {
    for (const w of workers) this.watch(w);
  }

  static async create(tokenizer: Tokenizer, opts: EncodePoolOptions = {}): Promise<EncodePool> {
    const count = opts.workers ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    const workers = await Promise.all(Array.from({ length: count }, () => startWorker(tokenizer.dir)));
    return new EncodePool(
      tokenizer,
      workers,
      opts.inlineMaxChars ?? (tokenizer.hasFastEncoder ? 16384 : 2048),
      await maxBytesPerToken(tokenizer),
    );
  }

  /**
   * At least this many tokens (BOS not counted): every token stands for at most `maxBytesPerToken` bytes of
   * the text's UTF-8.
   */
  minTokenCount(text: string): number {
    return Math.ceil(Buffer.byteLength(text, "utf8") / this.maxBytesPerToken);
  }

  /** Live workers (a dead one is replaced), for tests and the startup log. */
  get workerCount(): number {
    return this.workers.length;
  }

  /** `tokenizer.encode(text, opts)`, on a worker when the text is long. */
  encode(text: string, opts: EncodeOptions = {}): Promise<number[]> {
    if (this.closed) return Promise.reject(new Error("the tokenizer pool is closed"));
    if (text.length <= this.inlineMaxChars || this.workers.length === 0) {
      try {
        return Promise.resolve(this.tokenizer.encode(text, opts));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const target = this.workers.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = this.nextId++;
    target.jobs.add(id);
    if (target.jobs.size === 1) target.worker.ref();
    return new Promise<number[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      target.worker.postMessage({ id, text, addBos: opts.addBos });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.pending.values()) job.reject(new Error("the tokenizer pool is closed"));
    this.pending.clear();
    const workers = this.workers.splice(0);
    // Ref'd until they are gone: an idle worker is unref'd, and a close() awaited with nothing else in the event loop
    // would otherwise leave the loop empty before the worker's exit.
    await Promise.all(
      workers.map((w) => {
        w.worker.ref();
        return w.worker.terminate();
      }),
    );
  }

  /** Routes a worker's answers; a worker that dies fails only its own jobs and is replaced. */
  private watch(w: PoolWorker): void {
    w.worker.on("message", (reply: WorkerReply) => this.onReply(w, reply));
    const onDeath = (reason: string) => {
      const index = this.workers.indexOf(w);
      if (index < 0) return;
      this.workers.splice(index, 1);
      for (const id of w.jobs) {
        this.pending.get(id)?.reject(new Error(`the tokenizer worker failed: ${reason}`));
        this.pending.delete(id);
      }
      w.jobs.clear();
      if (this.closed) return;
      startWorker(this.tokenizer.dir).then(
        (fresh) => {
          if (this.closed) return void fresh.worker.terminate();
          this.workers.push(fresh);
          this.watch(fresh);
        },
        () => {}, // No replacement: the other workers, or the calling thread, carry on.
      );
    };
    w.worker.on("error", (err: Error) => onDeath(err.message));
    w.worker.on("exit", (code: number) => onDeath(`exited with code ${code}`));
    w.worker.unref();
  }

  private onReply(w: PoolWorker, reply: WorkerReply): void {
    if (!("id" in reply)) return;
    w.jobs.delete(reply.id);
    if (w.jobs.size === 0) w.worker.unref();
    const job = this.pending.get(reply.id);
    if (!job) return;
    this.pending.delete(reply.id);
    if ("error" in reply) job.reject(new Error(reply.error));
    else job.resolve(Array.from(reply.ids));
  }

  /** Test hook: the first live worker's thread, to kill it. */
  firstWorkerForTest(): Worker | undefined {
    return this.workers[0]?.worker;
  }
}

function startWorker(dir: string): Promise<PoolWorker> {
  const worker = new Worker(new URL("./encode-worker.js", import.meta.url), { workerData: { dir } });
  return new Promise((resolve, reject) => {
    const onError = (err: Error) =>
      reject(new Error(`cannot start a tokenizer worker for ${dir}: ${err.message}`));
    worker.once("error", onError);
    worker.once("message", (reply: WorkerReply) => {
      worker.off("error", onError);
      if ("ready" in reply) resolve({ worker, jobs: new Set() });
      else reject(new Error("tokenizer worker: unexpected first message"));
    });
  });
}

/**
 * The most input bytes one token can stand for: the longest piece's UTF-8 length (a piece's text is never
 * shorter than what it encodes: "▁" is 3 bytes for 1 space, "<0x0A>" 6 for 1), times 4 when the normalizer
 * can shrink text (NFKC maps a 3-byte "Ａ" to a 1-byte "A").
 */
async function maxBytesPerToken(tokenizer: Tokenizer): Promise<number> {
  let longest = 1;
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    const piece = tokenizer.idToToken(id);
    if (piece !== undefined) longest = Math.max(longest, Buffer.byteLength(piece, "utf8"));
  }
  const json = await readFile(path.join(tokenizer.dir, "tokenizer.json"), "utf8").catch(() => "");
  const normalizer = /"normalizer"\s*:\s*(null|\{)/.exec(json);
  const shrinking =
    normalizer === null ||
    (normalizer[1] === "{" &&
      SHRINKING_NORMALIZER.test(json.slice(normalizer.index, normalizer.index + 4096)));
  return shrinking ? longest * 4 : longest;
}
