#!/usr/bin/env bash
# Packs what the GPU machine needs beside the working tree into git-ignored .gpu-data/, compressed so that the
# whole transfer stays under the 64 MiB limit (Node 24 MB + the tracked tree ~21 MB leave ~19 MB):
#   modules.tar.xz  production node_modules + the openai client (for the end-to-end test), ~3.5 MB
#   build.tar.xz    dist/, native/build/awq_native.node, native/build/kernel-tests/kernel-tests and the kernel tracer
#                   (native/kernel-trace/build.sh, with a copy of libcupti), ~7 MB
#   tiny-chat-fp16.tar.xz  ../shared/models/tiny-chat less its embedding (the conformance suite's fp16 test), ~9 MB
# Then call the device with carry [".gpu/node.xz", ".gpu/run.sh", ".gpu/peer_pytorch.py", ".gpu-data"] and
#   bash scripts/gpu-unpack.sh && bash .gpu/run.sh bash scripts/gpu-run.sh [steps]
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
[[ -f .gpu/node.xz && -d .gpu/prod_modules ]] || bash ../shared/tools/gpu-prep.sh
mkdir -p .gpu-data
stamp=.gpu-data/.modules-stamp
want="$(ls .gpu/prod_modules/.stamp-* 2>/dev/null)-$(stat -c %Y node_modules/openai/package.json)"
if [[ ! -f .gpu-data/modules.tar.xz || "$(cat $stamp 2>/dev/null)" != "$want" ]]; then
  tmp=$(mktemp -d); mkdir -p "$tmp/node_modules"
  cp -r .gpu/prod_modules/. "$tmp/node_modules/"
  cp -r node_modules/openai "$tmp/node_modules/"
  tar -C "$tmp" -cf - node_modules | xz -T2 -6 > .gpu-data/modules.tar.xz
  rm -rf "$tmp"; echo "$want" > $stamp
fi
# The fp16 demo model without its embedding (byte-identical to the AWQ demo's; gpu-unpack.sh merges it back).
fp16=../shared/models/tiny-chat
if [[ -f $fp16/model.safetensors && ! -f .gpu-data/tiny-chat-fp16.tar.xz ]]; then
  tmp=$(mktemp -d)
  python3 scripts/gpu-split-model.py split $fp16/model.safetensors "$tmp/model.part.safetensors" model.embed_tokens.weight
  cp $fp16/config.json $fp16/generation_config.json "$tmp/"
  tar -C "$tmp" -cf - . | xz -T2 -9 > .gpu-data/tiny-chat-fp16.tar.xz
  rm -rf "$tmp"
fi
# AutoAWQ's checkpoint of the demo model (reference.json's AWQ tokens), likewise without its embedding.
autoawq=../shared/models/tiny-chat-awq
if [[ -f $autoawq/model.safetensors && ! -f .gpu-data/tiny-chat-autoawq.tar.xz ]]; then
  tmp=$(mktemp -d)
  python3 scripts/gpu-split-model.py split $autoawq/model.safetensors "$tmp/model.part.safetensors" model.embed_tokens.weight
  cp $autoawq/*.json "$tmp/"
  tar -C "$tmp" -cf - . | xz -T2 -9 > .gpu-data/tiny-chat-autoawq.tar.xz
  rm -rf "$tmp"
fi
# The demo calibration and dev texts (../shared/data) for the quantizer runs.
if [[ -f ../shared/data/demo-calib.txt && ! -f .gpu-data/demo-data.tar.xz ]]; then
  tar -C ../shared/data -cf - demo-calib.txt demo-dev.txt | xz -T2 -9 > .gpu-data/demo-data.tar.xz
fi
# The CUPTI kernel tracer (scripts/kernel-trace.sh), built here when missing or older than its source.
trace_lib=native/build/kernel-trace/libawq-kernel-trace.so
if [[ ! -f $trace_lib || native/kernel-trace/kernel_trace.cpp -nt $trace_lib ]]; then
  bash native/kernel-trace/build.sh || echo "gpu-pack: the kernel tracer was not built (no libcupti?); kernel-trace will skip"
fi
files=(dist native/build/awq_native.node)
[[ -x native/build/kernel-tests/kernel-tests ]] && files+=(native/build/kernel-tests/kernel-tests)
[[ -f native/build/kernel-trace/libawq-kernel-trace.so ]] && files+=(native/build/kernel-trace)  # + its libcupti, ~1 MB
tar -cf - --exclude='*.map' "${files[@]}" | xz -T2 -9e > .gpu-data/build.tar.xz  # -9e: ~5.5 MB instead of 12 (fatbins compress well), ~1 min
du -ch .gpu/node.xz .gpu/run.sh .gpu/peer_pytorch.py .gpu-data $(git ls-files) \
  $(git ls-files --others --exclude-standard) 2>/dev/null | tail -1 | sed 's/total/total that travels/'
