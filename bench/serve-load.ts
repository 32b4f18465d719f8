/**
 * A bounded load run against `awq serve` on loopback: N requests at C concurrent (short completions, a mix of
 * chat and completions, every 4th streamed), then the same again. Reports errors, throughput, latency
 * percentiles, time to first token of the streamed ones, and the server's RSS (from its /metrics) after
 * warm-up, after the first round and after the second (steady state: no growth expected).
 *
 *   node dist/bench/serve-load.js [--requests 500] [--concurrency 32] [--max-tokens 16] [--rounds 2]
 *                                 [--warmup 256] [--num-blocks 256] [--model models/tiny-chat-awq]
 *                                 [--backend cpu] [--url http://host:port]
 *
 * Without --url it spawns `awq serve` on a free port and stops it (SIGTERM) at the end. The KV cache is one
 * preallocated array whose pages the OS commits on first touch, and freed blocks are reused oldest first,
 * so RSS rises until every block has been used once: the server gets a small cache (--num-blocks) that
 * the warm-up fills, so the rounds measure the server's own memory, not page commits of the cache.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

const repoRoot = resolve(import.meta.dirname, "../..");

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "500" },
    concurrency: { type: "string", default: "32" },
    "max-tokens": { type: "string", default: "16" },
    rounds: { type: "string", default: "2" },
    warmup: { type: "string", default: "256" },
    "num-blocks": { type: "string", default: "256" },
    model: { type: "string", default: resolve(repoRoot, "models/tiny-chat-awq") },
    backend: { type: "string", default: "cpu" },
    url: { type: "string" },
  },
});
const numRequests = Number(values.requests);
const concurrency = Number(values.concurrency);
const maxTokens = Number(values["max-tokens"]);
const rounds = Number(values.rounds);

const PROMPTS = [
  "In the beginning",
  "Fortune favours the bold",
  "The Lord is my shepherd",
  "A friend in need",
  "You will find happiness",
  "Blessed are the meek",
  "Your lucky numbers are",
  "And God said, Let there be light",
];

interface Sample {
  ok: boolean;
  status: number;
  latencyMs: number;
  ttftMs: number | null;
  completionTokens: number;
}

async function startServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      resolve(repoRoot, "dist/src/cli/main.js"),
      "serve",
      values.model!,
      "--port",
      "0",
      "--backend",
      values.backend!,
      "--num-gpu-blocks-override",
      values["num-blocks"]!,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let buffered = "";
  const port = await new Promise<number>((resolvePort, reject) => {
    child.on("exit", (code) => reject(new Error(`awq serve exited with ${code} before listening`)));
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) if (line.includes('"listening"')) resolvePort(JSON.parse(line).port);
    });
  });
  child.stdout!.removeAllListeners("data");
  child.stdout!.resume(); // one log line per request: read and drop
  return { url: `http://127.0.0.1:${port}`, child };
}

async function oneRequest(url: string, i: number): Promise<Sample> {
  const prompt = `${PROMPTS[i % PROMPTS.length]}${" and".repeat(i % 5)}`;
  const stream = i % 4 === 3;
  const chat = i % 2 === 0;
  const body = chat
    ? {
        messages: [{ role: "user", content: prompt }],
        max_tokens: maxTokens,
        temperature: 0.7,
        seed: i,
        stream,
      }
    : { prompt, max_tokens: maxTokens, temperature: 0.7, seed: i, stream };
  if (stream) Object.assign(body, { stream_options: { include_usage: true } });
  const started = performance.now();
  try {
    const res = await fetch(`${url}/v1/${chat ? "chat/completions" : "completions"}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!stream) {
      const json = (await res.json()) as { usage?: { completion_tokens: number } };
      const latencyMs = performance.now() - started;
      const completionTokens = json.usage?.completion_tokens ?? 0;
      return {
        ok: res.status === 200 && completionTokens > 0,
        status: res.status,
        latencyMs,
        ttftMs: null,
        completionTokens,
      };
    }
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let ttftMs: number | null = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      // The first chunk is the role chunk (chat) or the first text (completions); TTFT = first content.
      if (ttftMs === null && /"(content|text)":"[^"]/.test(text)) ttftMs = performance.now() - started;
    }
    const usage = /"usage":\{"prompt_tokens":\d+,"completion_tokens":(\d+)/.exec(text);
    const completionTokens = usage ? Number(usage[1]) : 0;
    const ok = res.status === 200 && text.trimEnd().endsWith("data: [DONE]") && completionTokens > 0;
    return { ok, status: res.status, latencyMs: performance.now() - started, ttftMs, completionTokens };
  } catch {
    return {
      ok: false,
      status: 0,
      latencyMs: performance.now() - started,
      ttftMs: null,
      completionTokens: 0,
    };
  }
}

async function runRound(
  url: string,
  count: number,
  offset: number,
): Promise<{ samples: Sample[]; seconds: number }> {
  const samples: Sample[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        samples.push(await oneRequest(url, offset + i));
      }
    }),
  );
  return { samples, seconds: (performance.now() - started) / 1000 };
}

async function serverGauge(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name));
  return line ? Number(line.split(" ").at(-1)) : Number.NaN;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const mib = (bytes: number) => `${fmt(bytes / 2 ** 20)} MiB`;

async function main(): Promise<void> {
  const server = values.url ? { url: values.url, child: null } : await startServer();
  const { url } = server;
  try {
    await runRound(url, Number(values.warmup), 1_000_000);
    const rssWarm = await serverGauge(url, "process_resident_memory_bytes");
    const heapWarm = await serverGauge(url, "nodejs_heap_size_used_bytes");
    console.log(`server ${url}  model ${values.model}  backend ${values.backend}`);
    console.log(
      `load: ${numRequests} requests x ${rounds} rounds, ${concurrency} concurrent, max_tokens ${maxTokens}`,
    );
    console.log(
      `after warm-up (${values.warmup} requests): RSS ${mib(rssWarm)}, JS heap used ${mib(heapWarm)}`,
    );
    let failures = 0;
    for (let round = 1; round <= rounds; round++) {
      const { samples, seconds } = await runRound(url, numRequests, round * numRequests);
      const errors = samples.filter((s) => !s.ok);
      failures += errors.length;
      const latencies = samples.map((s) => s.latencyMs).sort((a, b) => a - b);
      const ttfts = samples.flatMap((s) => (s.ttftMs === null ? [] : [s.ttftMs])).sort((a, b) => a - b);
      const tokens = samples.reduce((n, s) => n + s.completionTokens, 0);
      const rss = await serverGauge(url, "process_resident_memory_bytes");
      const heap = await serverGauge(url, "nodejs_heap_size_used_bytes");
      console.log(
        `round ${round}: ${samples.length - errors.length}/${samples.length} ok` +
          (errors.length
            ? ` (statuses of failures: ${[...new Set(errors.map((e) => e.status))].join(", ")})`
            : "") +
          `, ${fmt(seconds, 2)} s, ${fmt(samples.length / seconds)} req/s, ${fmt(tokens / seconds)} generated tok/s`,
      );
      console.log(
        `  latency ms: p50 ${fmt(percentile(latencies, 50))}  p90 ${fmt(percentile(latencies, 90))}  ` +
          `p99 ${fmt(percentile(latencies, 99))}  max ${fmt(latencies.at(-1) ?? Number.NaN)}`,
      );
      console.log(
        `  TTFT ms (streamed, n=${ttfts.length}): p50 ${fmt(percentile(ttfts, 50))}  p99 ${fmt(percentile(ttfts, 99))}`,
      );
      console.log(
        `  server RSS ${mib(rss)} (${rss >= rssWarm ? "+" : ""}${mib(rss - rssWarm)} since warm-up), ` +
          `JS heap used ${mib(heap)}`,
      );
    }
    const running = await serverGauge(url, "vllm:num_requests_running");
    const kvUsage = await serverGauge(url, "vllm:kv_cache_usage_perc");
    console.log(`after: running ${running}, KV cache usage ${kvUsage}, errors ${failures}`);
    if (failures > 0 || running !== 0 || kvUsage !== 0) process.exitCode = 1;
  } finally {
    if (server.child) {
      server.child.kill("SIGTERM");
      await new Promise((done) => server.child!.once("exit", done));
    }
  }
}

await main();
