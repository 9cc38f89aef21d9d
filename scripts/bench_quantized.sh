#!/usr/bin/env bash
# The size ladder quantized: aligntds (`q`, exact dequantization; `q8`, 8-bit
# activations) against llama.cpp on the same GGUF files, which llama.cpp's own
# quantizer makes from the ladder's random checkpoint (Q8_0, Q4_0, Q4_K_M;
# kept under ~/.cache/aligntds/bench/gguf, outside git).
#
#   bash scripts/bench.sh --size 0.6b|1b --quantized
#   ROUNDS=5 SCORE_TOKENS=512 GEN_TOKENS=64 TYPES="Q8_0 Q4_0 Q4_K_M" CASES="score generate"
#   BENCH_THREADS=N
#   BENCH_PYTHON (torch and gguf, to write the f32 GGUF) and LLAMA_PYTHON
#   (llama-cpp-python) default to .venv-bench/bin/python (scripts/bench-setup.sh).
#
# Protocol as bench_ladder.sh: rounds with the tools interleaved (order
# alternating), one process at a time, one timed run after a warm-up each;
# the median over rounds with the min-max spread.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:?usage: bench_quantized.sh 0.6b|1b}
rounds=${ROUNDS:-5}
score_tokens=${SCORE_TOKENS:-512}
gen_tokens=${GEN_TOKENS:-64}
types=${TYPES:-Q8_0 Q4_0 Q4_K_M}
cases=${CASES:-score generate}
export BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
export RAYON_NUM_THREADS=$BENCH_THREADS
py=${BENCH_PYTHON:-.venv-bench/bin/python}
llama_py=${LLAMA_PYTHON:-.venv-bench/bin/python}
bench=${BENCH_DIR:-$HOME/.cache/aligntds/bench}
gguf=$bench/gguf
mkdir -p "$gguf"
if [ ! -f "$bench/$size/model.safetensors" ]; then
  echo "making the $size checkpoint in $bench/$size"
  "$py" scripts/make_fixtures.py --bench "$bench/$size" --bench-size "$size"
fi
for t in $types; do
  [ -f "$gguf/$size.$t.gguf" ] && continue
  if [ ! -f "$gguf/$size.f32.gguf" ]; then
    echo "writing $gguf/$size.f32.gguf"
    PYTHONPATH=scripts "$py" -c "import sys, write_gguf; from pathlib import Path; write_gguf.write(Path(sys.argv[1]), Path(sys.argv[2]), pad_vocab=True)" \
      "$bench/$size" "$gguf/$size.f32.gguf"
  fi
  echo "quantizing to $t with llama.cpp"
  "$llama_py" scripts/quantize_gguf.py "$gguf/$size.f32.gguf" "$gguf/$size.$t.gguf" "$t" 2>/dev/null
done
rm -f "$gguf/$size.f32.gguf"
. scripts/bench_record.sh  # builds aligntds ($ours), sets $results and record

# once TOOL TYPE CASE: one process, one timed run; appends "tool|type|case|tokens/s|rss MB".
once() {
  local tool=$1 type=$2 case=$3 tokens file=$gguf/$size.$2.gguf
  tokens=$score_tokens; [ "$case" = generate ] && tokens=$gen_tokens
  local cmd s=0 g=0
  if [ "$case" = score ]; then s=$tokens; else g=$tokens; fi
  case $tool in
    llama.cpp) cmd=("$llama_py" scripts/bench_peers.py llama.cpp "$case" "$file" "$tokens" 1) ;;
    *) cmd=("$ours" bench "$file" --dtype "${tool#aligntds-}" --score-tokens "$s" --generate-tokens "$g" --repeats 1) ;;
  esac
  record "$tool|$type|$case" "${cmd[@]}"
}

for round in $(seq "$rounds"); do
  echo "== round $round of $rounds"
  tools=(aligntds-q8 llama.cpp aligntds-q)
  [ $((round % 2)) -eq 0 ] && tools=(llama.cpp aligntds-q aligntds-q8)
  for type in $types; do
    for case in $cases; do
      for tool in "${tools[@]}"; do once "$tool" "$type" "$case"; done
    done
  done
done

echo
echo "$size quantized ($gguf), $(uname -m), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $BENCH_THREADS threads"
echo "CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_vnni|avx512_bf16|amx_tile|amx_int8)$' | tr '\n' ' ')"
echo "scoring $score_tokens tokens in one pass; generating $gen_tokens greedily; median of $rounds rounds (min-max)"
python3 - "$results" <<'PY'
import statistics, sys
runs, rss = {}, {}
for line in open(sys.argv[1]):
    tool, kind, case, speed, mb = line.strip().split("|")
    runs.setdefault((case, kind, tool), []).append(float(speed))
    rss[(case, kind, tool)] = max(rss.get((case, kind, tool), 0), int(mb))
tools = ("aligntds-q8", "aligntds-q", "llama.cpp")
print("| case | file | aligntds q8 | aligntds q | llama.cpp | q8 / llama.cpp | peak RSS MB (q8 / llama.cpp) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for case, kind in sorted({(c, k) for c, k, _ in runs}, key=lambda k: (k[0] != "score", k[1])):
    cell, med = [], {}
    for tool in tools:
        v = runs.get((case, kind, tool))
        if v:
            med[tool] = statistics.median(v)
            cell.append(f"{med[tool]:.1f} ({min(v):.1f}-{max(v):.1f})")
        else:
            cell.append("-")
    ratio = f"{med['aligntds-q8'] / med['llama.cpp']:.2f}x" if {"aligntds-q8", "llama.cpp"} <= med.keys() else ""
    mem = " / ".join(str(rss.get((case, kind, t), "-")) for t in ("aligntds-q8", "llama.cpp"))
    print(f"| {case} | {kind} | {' | '.join(cell)} | {ratio} | {mem} |")
PY
