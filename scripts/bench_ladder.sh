#!/usr/bin/env bash
# The size ladder: aligntds against transformers at the sizes people study, on
# a random-weight checkpoint with a released model's real shape (Qwen3-0.6B,
# Llama-3.2-1B; made by make_fixtures.py --bench-size under
# ~/.cache/aligntds/bench, outside git), in f32 and bf16.
#
#   bash scripts/bench.sh --size 0.6b|1b
#   ROUNDS=5 SCORE_TOKENS=512 GEN_TOKENS=64 DTYPES="f32 bf16" BENCH_THREADS=N
#
# Protocol (this machine is noisy): ROUNDS rounds; in each, every case runs
# once per tool, the tools interleaved (their order alternating by round),
# one process at a time, each timing one run after a warm-up. A case's figure
# is the median over rounds, with the spread (min-max) beside it; the ratio is
# of the medians. Peak RSS is the largest over rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:?usage: bench_ladder.sh 0.6b|1b}
rounds=${ROUNDS:-5}
score_tokens=${SCORE_TOKENS:-512}
gen_tokens=${GEN_TOKENS:-64}
dtypes=${DTYPES:-f32 bf16}
export BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
export RAYON_NUM_THREADS=$BENCH_THREADS
py=${BENCH_PYTHON:-}
if [ -z "$py" ]; then
  # The peers' venv (bench-setup.sh), else the vLLM test venv, which has transformers too.
  for candidate in .venv-bench/bin/python "$HOME"/.cache/aligntds/vllm-*/bin/python python3; do
    if [ -x "$candidate" ] || command -v "$candidate" >/dev/null; then py=$candidate; break; fi
  done
fi
dir=${BENCH_DIR:-$HOME/.cache/aligntds/bench}/$size
if [ ! -f "$dir/model.safetensors" ]; then
  echo "making the $size checkpoint in $dir"
  "$py" scripts/make_fixtures.py --bench "$dir" --bench-size "$size"
fi
. scripts/bench_record.sh  # builds aligntds ($ours), sets $results and record

# once TOOL DTYPE CASE: one process, one timed run; appends "tool|dtype|case|tokens/s|rss MB".
once() {
  local tool=$1 dtype=$2 case=$3 tokens
  tokens=$score_tokens; [ "$case" = generate ] && tokens=$gen_tokens
  local cmd
  if [ "$tool" = aligntds ]; then
    local s=0 g=0
    if [ "$case" = score ]; then s=$tokens; else g=$tokens; fi
    cmd=("$ours" bench "$dir" --dtype "$dtype" --score-tokens "$s" --generate-tokens "$g" --repeats 1)
  else
    cmd=(env BENCH_DTYPE="$dtype" "$py" scripts/bench_peers.py transformers "$case" "$dir" "$tokens" 1)
  fi
  record "$tool|$dtype|$case" "${cmd[@]}"
}

for round in $(seq "$rounds"); do
  echo "== round $round of $rounds"
  tools=(aligntds transformers)
  [ $((round % 2)) -eq 0 ] && tools=(transformers aligntds)
  for dtype in $dtypes; do
    for case in score generate; do
      for tool in "${tools[@]}"; do once "$tool" "$dtype" "$case"; done
    done
  done
done

echo
echo "$size ($dir), $(uname -m), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $BENCH_THREADS threads"
echo "CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_bf16|amx_tile|amx_bf16)$' | tr '\n' ' ')"
echo "scoring $score_tokens tokens in one pass; generating $gen_tokens greedily; median of $rounds rounds (min-max)"
"$py" - "$results" <<'PY'
import statistics, sys
runs = {}
rss = {}
for line in open(sys.argv[1]):
    tool, dtype, case, speed, mb = line.strip().split("|")
    runs.setdefault((case, dtype, tool), []).append(float(speed))
    rss[(case, dtype, tool)] = max(rss.get((case, dtype, tool), 0), int(mb))
print("| case | weights | aligntds tokens/s | transformers tokens/s | ratio | peak RSS MB (ours / theirs) |")
print("| --- | --- | --- | --- | --- | --- |")
for case, dtype in sorted({(c, d) for c, d, _ in runs}, key=lambda k: (k[0] != "score", k[1])):
    cell, med = [], {}
    for tool in ("aligntds", "transformers"):
        v = runs.get((case, dtype, tool))
        if v:
            med[tool] = statistics.median(v)
            cell.append(f"{med[tool]:.1f} ({min(v):.1f}-{max(v):.1f})")
        else:
            cell.append("-")
    ratio = f"{med['aligntds'] / med['transformers']:.2f}x" if len(med) == 2 else ""
    mem = " / ".join(str(rss.get((case, dtype, t), "-")) for t in ("aligntds", "transformers"))
    print(f"| {case} | {dtype} | {cell[0]} | {cell[1]} | {ratio} | {mem} |")
PY
