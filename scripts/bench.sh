#!/usr/bin/env bash
# Side-by-side speed benchmark: aligntds against transformers and llama.cpp on
# the same machine, the same GGUF file and the same token ids, one case at a
# time (never concurrently). Peers run where installed (scripts/bench-setup.sh
# puts them in .venv-bench); missing ones are reported as such.
#
#   bash scripts/bench.sh [MODEL.gguf]     (default: the demo's SmolLM2-135M-Instruct Q4_1)
#   bash scripts/bench.sh CHECKPOINT_DIR   (f32 against transformers only, e.g. a random one
#                                           from make_fixtures.py --bench DIR --bench-family NAME)
#   SCORE_TOKENS=512 GEN_TOKENS=128 REPEATS=3 BENCH_THREADS=N bash scripts/bench.sh
#   bash scripts/bench.sh --size 0.6b|1b   (the size ladder against transformers, f32 and
#                                           bf16, interleaved rounds: see scripts/bench_ladder.sh)
#   bash scripts/bench.sh --size 0.6b|1b|7b --quantized   (the same shapes, and Llama-2-7B's,
#                                           quantized by llama.cpp, q and q8 against llama.cpp and
#                                           the memory-bandwidth bound: scripts/bench_quantized.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--size" ]; then
  [ "${3:-}" = "--quantized" ] && exec bash scripts/bench_quantized.sh "${2:?--size takes 0.6b or 1b}"
  exec bash scripts/bench_ladder.sh "${2:?--size takes 0.6b or 1b}"
fi
model=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
score_tokens=${SCORE_TOKENS:-512}
gen_tokens=${GEN_TOKENS:-128}
repeats=${REPEATS:-3}
export BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
export RAYON_NUM_THREADS=$BENCH_THREADS
py=python3
[ -x .venv-bench/bin/python ] && py=.venv-bench/bin/python
[ -e "$model" ] || { echo "error: $model not found (run scripts/setup.sh)" >&2; exit 2; }
quantized=yes
[ -d "$model" ] && quantized=  # a checkpoint folder has no quantized form and no llama.cpp peer
cargo build --release --locked -q -p aligntds
results=$(mktemp)
trap 'rm -f "$results"' EXIT

# run CASE TOOL WEIGHTS COMMAND...: records tokens/s and peak RSS (MB) of one process.
run() {
  local case=$1 tool=$2 weights=$3
  shift 3
  local log
  log=$(mktemp)
  if /usr/bin/time -f "peak_rss_kb %M" "$@" >"$log" 2>&1; then
    local speed rss
    speed=$(grep -oE '= [0-9.]+ tokens/s' "$log" | tail -1 | grep -oE '[0-9.]+')
    rss=$(grep -oE 'peak_rss_kb [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    echo "$case|$tool|$weights|$speed|$((rss / 1024))" >>"$results"
    grep -E 'tokens/s' "$log" | tail -1
  else
    echo "$case|$tool|$weights|-|-" >>"$results"
    echo "$tool $case: not run ($(tail -1 "$log"))"
  fi
  rm -f "$log"
}

ours=target/release/aligntds
echo "== scoring $score_tokens tokens (forward pass + log-softmax over every position), $BENCH_THREADS threads"
run score aligntds f32 "$ours" bench "$model" --dtype f32 --score-tokens "$score_tokens" --generate-tokens 0 --repeats "$repeats"
run score transformers f32 "$py" scripts/bench_peers.py transformers score "$model" "$score_tokens" "$repeats"
if [ -n "$quantized" ]; then
  run score aligntds q "$ours" bench "$model" --dtype q --score-tokens "$score_tokens" --generate-tokens 0 --repeats "$repeats"
  run score llama.cpp q "$py" scripts/bench_peers.py llama.cpp score "$model" "$score_tokens" "$repeats"
fi
echo "== greedy generation of $gen_tokens tokens"
run generate aligntds f32 "$ours" bench "$model" --dtype f32 --score-tokens 0 --generate-tokens "$gen_tokens" --repeats "$repeats"
run generate transformers f32 "$py" scripts/bench_peers.py transformers generate "$model" "$gen_tokens" "$repeats"
if [ -n "$quantized" ]; then
  run generate aligntds q "$ours" bench "$model" --dtype q --score-tokens 0 --generate-tokens "$gen_tokens" --repeats "$repeats"
  run generate llama.cpp q "$py" scripts/bench_peers.py llama.cpp generate "$model" "$gen_tokens" "$repeats"
fi

echo
echo "$(uname -m), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $BENCH_THREADS threads; $model"
"$py" - "$results" <<'PY'
import sys
rows = [line.strip().split("|") for line in open(sys.argv[1]) if line.strip()]
speed = {(c, t, w): s for c, t, w, s, _ in rows}
print("| case | tool | weights | tokens/s | peak RSS (MB) | aligntds / peer |")
print("| --- | --- | --- | --- | --- | --- |")
for c, t, w, s, m in rows:
    ours = speed.get((c, "aligntds", w), "-")
    ratio = f"{float(ours) / float(s):.2f}x" if t != "aligntds" and "-" not in (ours, s) else ""
    print(f"| {c} | {t} | {w} | {s} | {m} | {ratio} |")
PY
