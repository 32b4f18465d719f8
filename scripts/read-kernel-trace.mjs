#!/usr/bin/env node
// Summarizes a kernel trace of native/kernel-trace (CUPTI: every kernel's start and end, graph nodes included):
//   node scripts/read-kernel-trace.mjs TRACE.jsonl [--min-launches N] [--top K]
// For every CUDA graph launched at least N times (default 3; a decode step is one launch of its batch bucket's
// graph): the launches' median span (first kernel start to last kernel end) and idle time, then each kernel (name
// and grid, so q|k|v and gate|up on one kernel stay apart) with its calls a launch and its share of the span.
// A kernel's share is the time from the end of the kernel before it (or from its own start, when the GPU was idle
// in between) to its own end: with programmatic dependent launch a kernel starts while the one before still runs and
// waits inside, so start-to-end durations overlap and would count that wait twice. Shares add up to the span.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const usage = "usage: node scripts/read-kernel-trace.mjs TRACE.jsonl [--min-launches N] [--top K]";
let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { "min-launches": { type: "string", default: "3" }, top: { type: "string", default: "40" } },
  });
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}
const path = parsed.positionals[0];
const minLaunches = Number(parsed.values["min-launches"]);
const top = Number(parsed.values.top);
if (!path || parsed.positionals.length > 1 || !(minLaunches >= 1) || !(top >= 1)) {
  console.error(usage);
  process.exit(2);
}

const records = [];
readFileSync(path, "utf8")
  .split("\n")
  .forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      records.push(JSON.parse(line));
    } catch {
      // A process killed mid-write leaves a partial last line; anything else is an error worth naming.
      console.error(`${path}:${i + 1}: not a JSON line (skipped)`);
    }
  });

/** "void awqk::(anonymous namespace)::gemv_kernel<1, 2>(half const*, ...)" -> "gemv_kernel<1, 2>" */
function kernelClass(name) {
  let s = name.replace(/^void /, "");
  let depth = 0;
  let end = s.length;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === "<") depth++;
    else if (ch === ">") depth--;
    else if (ch === "(" && depth === 0 && !s.startsWith("(anonymous", i)) {
      end = i;
      break;
    }
  }
  s = s.slice(0, end);
  return s.replace(/\w+::\(anonymous namespace\)::/g, "").replace(/^(awqk|awq)::/, "");
}

const median = (xs) => {
  if (xs.length === 0) return 0;
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};

// Graph launches: every node of one launch carries the launch call's correlation id.
const launchesByGraph = new Map();
for (const r of records) {
  if (!r.g) continue;
  const byLaunch = launchesByGraph.get(r.g) ?? new Map();
  launchesByGraph.set(r.g, byLaunch);
  const list = byLaunch.get(r.c) ?? [];
  list.push(r);
  byLaunch.set(r.c, list);
}

function analyzeLaunch(kernels) {
  kernels.sort((a, b) => a.e - b.e || a.s - b.s);
  const start = Math.min(...kernels.map((k) => k.s));
  let prev = start;
  let idle = 0;
  const shares = new Map();
  for (const k of kernels) {
    let share;
    if (k.s > prev) {
      idle += k.s - prev;
      share = k.e - k.s;
    } else {
      share = Math.max(0, k.e - prev);
    }
    prev = Math.max(prev, k.e);
    const key = `${kernelClass(k.n)} grid ${k.grid.join("x")}`;
    const entry = shares.get(key) ?? { calls: 0, share: 0, dur: 0 };
    entry.calls++;
    entry.share += share;
    entry.dur += k.e - k.s;
    shares.set(key, entry);
  }
  return { span: prev - start, idle, shares, kernels: kernels.length };
}

const us = (ns) => (ns / 1000).toFixed(1);
const graphs = [...launchesByGraph.entries()]
  .map(([g, byLaunch]) => ({ g, launches: [...byLaunch.values()] }))
  .filter((x) => x.launches.length >= minLaunches)
  .sort((a, b) => b.launches.length - a.launches.length);
if (graphs.length === 0) console.log(`no graph launched ${minLaunches} times or more in ${path}`);
for (const { g, launches } of graphs) {
  // The first launch of a graph pays its upload: the steady launches are the rest.
  const steady = launches.length > 1 ? launches.slice(1) : launches;
  const analyzed = steady.map(analyzeLaunch);
  const span = median(analyzed.map((a) => a.span));
  const idle = median(analyzed.map((a) => a.idle));
  console.log(
    `\ngraph ${g}: ${launches.length} launches, ${analyzed[0].kernels} kernels a launch; median span ${us(span)} us, ` +
      `idle inside ${us(idle)} us`,
  );
  const keys = new Set(analyzed.flatMap((a) => [...a.shares.keys()]));
  const rows = [...keys].map((key) => {
    const per = analyzed.map((a) => a.shares.get(key) ?? { calls: 0, share: 0, dur: 0 });
    const calls = median(per.map((p) => p.calls));
    const share = median(per.map((p) => p.share));
    const dur = median(per.map((p) => (p.calls ? p.dur / p.calls : 0)));
    return { key, calls, share, dur };
  });
  rows.sort((a, b) => b.share - a.share);
  console.log("  share us | % span | calls | share/call us | start-to-end/call us | kernel, grid");
  for (const r of rows.slice(0, top))
    console.log(
      `  ${us(r.share).padStart(8)} | ${((100 * r.share) / span).toFixed(1).padStart(5)}% | ${String(r.calls).padStart(5)} | ` +
        `${(r.share / 1000 / Math.max(1, r.calls)).toFixed(2).padStart(13)} | ${us(r.dur).padStart(20)} | ${r.key}`,
    );
  if (rows.length > top) console.log(`  ... ${rows.length - top} more kernels (--top)`);
}
const eager = records.filter((r) => !r.g).length;
console.log(
  `\n${records.length} kernel records, ${records.length - eager} from graphs, ${eager} launched eagerly`,
);
