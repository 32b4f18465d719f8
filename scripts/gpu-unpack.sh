#!/usr/bin/env bash
# On the GPU machine: unpacks what scripts/gpu-pack.sh bundled (build outputs into the tree, node_modules into /tmp).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root"
tar -xJf .gpu-data/build.tar.xz
mkdir -p /tmp/awq-modules
[[ -d /tmp/awq-modules/node_modules ]] || tar -xJf .gpu-data/modules.tar.xz -C /tmp/awq-modules
ln -sfn /tmp/awq-modules/node_modules node_modules
# ../shared/models/tiny-chat for the conformance suite: the fp16 demo model, its embedding taken from the AWQ demo.
if [[ -f .gpu-data/tiny-chat-fp16.tar.xz && ! -f ../shared/models/tiny-chat/model.safetensors ]]; then
  mkdir -p ../shared/models/tiny-chat
  tar -xJf .gpu-data/tiny-chat-fp16.tar.xz -C ../shared/models/tiny-chat
  python3 scripts/gpu-split-model.py merge ../shared/models/tiny-chat/model.part.safetensors \
    models/tiny-chat-awq/model.safetensors ../shared/models/tiny-chat/model.safetensors model.embed_tokens.weight
  rm ../shared/models/tiny-chat/model.part.safetensors
fi
# Its tokenizer files are the repo demo's (the same tokenizer).
if [[ -d ../shared/models/tiny-chat && ! -f ../shared/models/tiny-chat/tokenizer.json ]]; then
  cp models/tiny-chat-awq/tokenizer.json models/tiny-chat-awq/tokenizer_config.json \
    models/tiny-chat-awq/special_tokens_map.json models/tiny-chat-awq/added_tokens.json ../shared/models/tiny-chat/
fi
# ../shared/models/tiny-chat-awq (AutoAWQ's checkpoint) for the conformance suite's reference-token test.
if [[ -f .gpu-data/tiny-chat-autoawq.tar.xz && ! -f ../shared/models/tiny-chat-awq/model.safetensors ]]; then
  mkdir -p ../shared/models/tiny-chat-awq
  tar -xJf .gpu-data/tiny-chat-autoawq.tar.xz -C ../shared/models/tiny-chat-awq
  python3 scripts/gpu-split-model.py merge ../shared/models/tiny-chat-awq/model.part.safetensors \
    models/tiny-chat-awq/model.safetensors ../shared/models/tiny-chat-awq/model.safetensors model.embed_tokens.weight
  rm ../shared/models/tiny-chat-awq/model.part.safetensors
fi
# ../shared/data/demo-calib.txt and demo-dev.txt for the quantizer runs.
if [[ -f .gpu-data/demo-data.tar.xz && ! -f ../shared/data/demo-calib.txt ]]; then
  mkdir -p ../shared/data
  tar -xJf .gpu-data/demo-data.tar.xz -C ../shared/data
fi
