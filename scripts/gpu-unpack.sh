#!/usr/bin/env bash
# On the GPU machine: unpacks what scripts/gpu-pack.sh bundled (build outputs into the tree, node_modules into /tmp).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root"
tar -xJf .gpu-data/build.tar.xz
mkdir -p /tmp/awq-modules
[[ -d /tmp/awq-modules/node_modules ]] || tar -xJf .gpu-data/modules.tar.xz -C /tmp/awq-modules
ln -sfn /tmp/awq-modules/node_modules node_modules
