/**
 * One tokenizer worker of EncodePool: loads the model folder's tokenizer once, then encodes the texts it is
 * sent. Messages in: `{ id, text, addBos }`; out: `{ id, ids: Int32Array }` (transferred) or `{ id, error }`.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Tokenizer } from "./tokenizer.js";

interface EncodeJob {
  id: number;
  text: string;
  addBos?: boolean;
}

const port = parentPort;
if (port === null) throw new Error("encode-worker.ts runs as a worker thread of EncodePool");
const tokenizer = await Tokenizer.load((workerData as { dir: string }).dir);
port.on("message", (job: EncodeJob) => {
  try {
    const ids = Int32Array.from(tokenizer.encode(job.text, { addBos: job.addBos }));
    port.postMessage({ id: job.id, ids }, [ids.buffer]);
  } catch (err) {
    port.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  }
});
port.postMessage({ ready: true });
