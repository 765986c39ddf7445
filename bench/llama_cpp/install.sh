#!/usr/bin/env bash
# Installs llama.cpp for bench/llama_cpp.ts and tests/llama_cpp_test.ts into .cache/llama-cpp: node-llama-cpp
# with its prebuilt linux-x64 CPU binaries only (npm's registry, ~83 MB; no GPU builds, no install script, so
# nothing is downloaded from anywhere else and nothing is compiled).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/../../.cache/llama-cpp"
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
cd "$dest"
npm ci --omit=optional --ignore-scripts --no-audit --no-fund
