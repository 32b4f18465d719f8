#!/usr/bin/env bash
# Shared by the verify-*.sh scripts (source it): whole decode steps of `awq bench latency`, both ways of a switch.
#   decode_rows                    stdin: bench latency's output; stdout: its decode rows on one line ("batch@ctx tok/s | ...")
#   decode_ab VAR PASSES LIMIT -- ARGS...
#                                  PASSES passes of bench latency ARGS with VAR=1 then VAR=0 (alternating processes,
#                                  each under LIMIT seconds), one line each: "pass P VAR=V: rows  Ts" (T from $T0)
decode_rows() {
  grep -E '^\| decode batch' | awk -F'|' '{ gsub(/ /, "", $2); gsub(/ /, "", $3); printf "%s@%s %s | ", $2, $3, $4 }'
}

decode_ab() {
  local var=$1 passes=$2 limit=$3 pass v line
  shift 4
  for ((pass = 1; pass <= passes; pass++)); do
    for v in 1 0; do
      line=$(env "$var=$v" timeout "$limit" node dist/src/cli/main.js bench latency "$@" 2>&1 | decode_rows)
      echo "pass $pass $var=$v: $line $((SECONDS - ${T0:-0}))s"
    done
  done
}
