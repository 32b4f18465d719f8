/**
 * The per-request async iterator the engine hands to a front end: outputs are pushed as steps produce them
 * and pulled with `for await`. Leaving the loop early (break, throw, return) aborts the request.
 */
import type { RequestOutput } from "./types.js";

export class OutputStream implements AsyncIterable<RequestOutput> {
  private readonly queue: RequestOutput[] = [];
  private waiter: ((result: IteratorResult<RequestOutput>) => void) | null = null;
  private done = false;
  private iterated = false;

  constructor(private readonly onEarlyExit: () => void) {}

  /** Queues an output; the one with finished = true is the last. */
  push(output: RequestOutput): void {
    if (this.done) return;
    if (output.finished) this.done = true;
    if (this.waiter !== null) {
      const resolve = this.waiter;
      this.waiter = null;
      resolve({ value: output, done: false });
    } else {
      this.queue.push(output);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<RequestOutput> {
    if (this.iterated) throw new Error("a request's output stream can be iterated only once");
    this.iterated = true;
    let finishedSeen = false;
    return {
      next: (): Promise<IteratorResult<RequestOutput>> => {
        if (finishedSeen) return Promise.resolve({ value: undefined, done: true });
        const next = this.queue.shift();
        if (next !== undefined) {
          if (next.finished) finishedSeen = true;
          return Promise.resolve({ value: next, done: false });
        }
        return new Promise((resolve) => {
          this.waiter = (result) => {
            if (!result.done && result.value.finished) finishedSeen = true;
            resolve(result);
          };
        });
      },
      return: (): Promise<IteratorResult<RequestOutput>> => {
        if (!finishedSeen) this.onEarlyExit();
        finishedSeen = true;
        this.queue.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
