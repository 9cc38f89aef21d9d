#!/usr/bin/env bash
# The offline demo: token distribution shift with the two real models from PyPI.
#   (a) SmolLM2-135M-Instruct under its chat template (aligned) vs the same model
#       under the study's zero-shot template (base);
#   (b) Gemma 3 270M base with the URIAL prefix (in-context alignment, aligned side)
#       vs the same model under the zero-shot template (base);
#   (c) pair (a) over sampled answers: 4 per query at temperature 0.7, seed 0.
# Usage: bash scripts/demo.sh [--quick]   (--quick: 3 queries, 64 new tokens; used by CI)
# --dtype q keeps the GGUF weights in their blocks: the scores equal f32's to 1e-5
# (same answers, same figures) and generation runs about 3x faster.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/aligntds"
[ -x "$bin" ] || { echo "error: $bin not built; run: bash scripts/setup.sh" >&2; exit 2; }
for m in models/SmolLM2-135M-Instruct.Q4_1.gguf models/gemma-3-270m-q4_k_m.gguf; do
  [ -f "$m" ] || { echo "error: $m missing; run: bash scripts/fetch-models.sh" >&2; exit 2; }
done
limit=(); tokens=256; suffix=""
if [ "${1:-}" = "--quick" ]; then limit=(--limit 3); tokens=64; suffix="-quick"; fi
smol=models/SmolLM2-135M-Instruct.Q4_1.gguf
gemma=models/gemma-3-270m-q4_k_m.gguf

echo "== (a) SmolLM2-135M-Instruct: chat template (aligned) vs zero-shot template (base)"
"$bin" analyze --aligned "$smol" --base "$smol" --aligned-context chat --base-context template \
  --data data/demo-instructions.jsonl "${limit[@]}" --max-new-tokens "$tokens" --dtype q \
  --out "runs/smollm2-chat-vs-template$suffix" --overwrite

echo
echo "== (b) Gemma 3 270M base: URIAL prefix (aligned, in-context alignment) vs zero-shot template (base)"
"$bin" analyze --aligned "$gemma" --base "$gemma" --aligned-context urial --base-context template \
  --data data/demo-instructions.jsonl "${limit[@]}" --max-new-tokens "$tokens" --dtype q \
  --out "runs/gemma3-urial-vs-template$suffix" --overwrite

echo
echo "== (c) SmolLM2-135M-Instruct as (a), its answers sampled: 4 per query at temperature 0.7 (intervals over queries)"
"$bin" analyze --aligned "$smol" --base "$smol" --aligned-context chat --base-context template \
  --data data/demo-instructions.jsonl "${limit[@]}" --max-new-tokens "$tokens" --dtype q \
  --samples 4 --temperature 0.7 --seed 0 \
  --out "runs/smollm2-chat-vs-template-sampled$suffix" --overwrite

echo
"$bin" report "runs/smollm2-chat-vs-template$suffix" "runs/gemma3-urial-vs-template$suffix" --out "runs/report$suffix"
echo "open runs/report$suffix/index.html in a browser (works from disk), or paste runs/report$suffix/report.md"
