#!/usr/bin/env bash
# Issue 14 item 3 on the GPU: the engine's host time between backend steps (the time the device waits for the
# host) with the real CUDA backend, the step loop as built (outputs overlapped with the next step) beside the
# loop as it was (AWQ_ENGINE_OVERLAP=0 semantics: --overlap off), same build, same call. Written 2026-12-05 and
# run only on the CPU so far (no device in that session).
#
#   bash scripts/verify-engine-host.sh        (from the repo root, after the build; ~2-3 minutes on an H100)
#
# Prints one JSON line per run (bench/engine-host-step.ts), then a table. PASS when, on the Llama-2-13B-shaped
# model at 256 running sequences, the overlapped loop's gap p50 <= 0.5 ms, and every run has 0 failures (each
# request ends with max_tokens tokens and finish_reason length, so no token was lost or duplicated by the
# reuse of the batch arrays or the reordered loop).
set -u
B="node dist/bench/engine-host-step.js --tokens 128 --prompt 64 --backend cuda"
log=$(mktemp)
run() { # label args...
  local label=$1; shift
  local line
  line=$(timeout 120 $B "$@" | grep '^{' | tail -n 1)
  echo "$label $line" | tee -a "$log"
}
for overlap in on off; do
  run "demo-256-$overlap" --seqs 256 --overlap "$overlap"
  run "13b-256-$overlap" --seqs 256 --model synthetic-13b --overlap "$overlap"
  run "13b-64-$overlap" --seqs 64 --model synthetic-13b --overlap "$overlap"
done
node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => {
    const [label, json] = [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)];
    try { return { label, r: JSON.parse(json) }; } catch { return { label, r: null }; }
  });
  console.log("run              gap ms p50    p90    p99  backend ms/step  failures");
  let pass = true;
  for (const { label, r } of rows) {
    if (r === null) { console.log(label.padEnd(16), "no result"); pass = false; continue; }
    const h = r.hostMsPerStep;
    const perStep = (r.backendMs / r.steps).toFixed(2);
    console.log(label.padEnd(16), String(h.p50).padStart(8), String(h.p90).padStart(6), String(h.p99).padStart(6),
      perStep.padStart(16), String(r.failures).padStart(9));
    if (r.failures !== 0) pass = false;
    if (label === "13b-256-on" && !(h.p50 <= 0.5)) pass = false;
  }
  console.log(pass ? "verify-engine-host: PASS" : "verify-engine-host: FAIL");
  process.exitCode = pass ? 0 : 1;
' "$log"
