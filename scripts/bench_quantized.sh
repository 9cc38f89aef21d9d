#!/usr/bin/env bash
# The size ladder quantized: aligntds (`q`, exact dequantization; `q8`, 8-bit
# activations) against llama.cpp on the same GGUF files, which llama.cpp's own
# quantizer makes from the ladder's random checkpoint (Q8_0, Q4_0, Q4_K_M;
# kept under ~/.cache/aligntds/bench/gguf, outside git).
#
#   bash scripts/bench.sh --size 0.6b|1b --quantized
#   ROUNDS=5 SCORE_TOKENS=512 GEN_TOKENS=64 TYPES="Q8_0 Q4_0 Q4_K_M" CASES="score generate"
#   TOOLS="aligntds-q8 llama.cpp aligntds-q" (at 7b without aligntds-q unless named)
#   BENCH_THREADS=N
#   BENCH_PYTHON (torch and gguf, to write the f32 GGUF) and LLAMA_PYTHON
#   (llama-cpp-python) default to .venv-bench/bin/python (scripts/bench-setup.sh).
#
# Protocol as bench_ladder.sh: rounds with the tools interleaved (order
# alternating), one process at a time, one timed run after a warm-up each;
# the median over rounds with the min-max spread.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:?usage: bench_quantized.sh 0.6b|1b|7b}
rounds=${ROUNDS:-5}
score_tokens=${SCORE_TOKENS:-512}
gen_tokens=${GEN_TOKENS:-64}
types=${TYPES:-Q8_0 Q4_0 Q4_K_M}
cases=${CASES:-score generate}
# `q` (exact dequantization) is left out at 7B by default: it is the slow, exact path.
tool_list=${TOOLS:-aligntds-q8 llama.cpp aligntds-q}
[ "$size" = 7b ] && tool_list=${TOOLS:-aligntds-q8 llama.cpp}
export BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
export RAYON_NUM_THREADS=$BENCH_THREADS
py=${BENCH_PYTHON:-.venv-bench/bin/python}
llama_py=${LLAMA_PYTHON:-.venv-bench/bin/python}
bench=${BENCH_DIR:-$HOME/.cache/aligntds/bench}
gguf=$bench/gguf
mkdir -p "$gguf"
if [ ! -f "$bench/$size/config.json" ]; then
  echo "making the $size checkpoint in $bench/$size"
  "$py" scripts/make_fixtures.py --bench "$bench/$size" --bench-size "$size"
fi
# The unquantized GGUF llama.cpp quantizes from: f32 from the checkpoint, or for 7B
# (no checkpoint: 27 GB in f32) random F16 weights streamed into the file (13.5 GB).
# It is deleted once the types are made: the disk is limited.
full=$gguf/$size.f32.gguf
writer="write_gguf.write(Path(sys.argv[1]), Path(sys.argv[2]), pad_vocab=True)"
if [ "$size" = 7b ]; then
  full=$gguf/$size.f16.gguf
  writer="write_gguf.write_random(Path(sys.argv[1]), Path(sys.argv[2]))"
fi
for t in $types; do
  [ -f "$gguf/$size.$t.gguf" ] && continue
  if [ ! -f "$full" ]; then
    echo "writing $full"
    PYTHONPATH=scripts "$py" -c "import sys, write_gguf; from pathlib import Path; $writer" "$bench/$size" "$full.part"
    mv "$full.part" "$full"
  fi
  echo "quantizing to $t with llama.cpp"
  "$llama_py" scripts/quantize_gguf.py "$full" "$gguf/$size.$t.gguf.part" "$t" 2>/dev/null
  mv "$gguf/$size.$t.gguf.part" "$gguf/$size.$t.gguf"
done
rm -f "$full"
. scripts/bench_record.sh  # builds aligntds ($ours), sets $results and record

# Generation's memory-bandwidth bound: a batch-1 step reads every weight once (the
# embedding only one row, unless it is tied as the head), so tokens/s <= read
# bandwidth (crates/engine/examples/memory_bandwidth.rs) / those bytes.
# This machine's bandwidth varies run to run (27-50 GB/s), so it is measured
# at the start of every round and the bound takes the median.
cargo build --release --locked -q -p aligntds-engine --example memory_bandwidth
bandwidths=$(mktemp)
step_bytes=$(mktemp)
trap 'rm -f "$results" "$step_bytes" "$bandwidths"' EXIT
for t in $types; do
  "$py" -c "import sys, gguf
r = {t.name: int(t.n_bytes) for t in gguf.GGUFReader(sys.argv[1]).tensors}
print(sys.argv[2], sum(r.values()) - (r['token_embd.weight'] if 'output.weight' in r else 0))" \
    "$gguf/$size.$t.gguf" "$t" >>"$step_bytes"
done

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
  target/release/examples/memory_bandwidth | grep -oE '[0-9.]+ GB/s' | cut -d' ' -f1 | tee -a "$bandwidths"
  read -r -a tools <<<"$tool_list"
  # Alternate the order, so no tool always runs after the same one.
  if [ $((round % 2)) -eq 0 ]; then
    for ((i = 0, j = ${#tools[@]} - 1; i < j; i++, j--)); do t=${tools[i]}; tools[i]=${tools[j]}; tools[j]=$t; done
  fi
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
python3 - "$results" "$bandwidths" "$step_bytes" <<'PY'
import statistics, sys
runs, rss = {}, {}
measured = [float(line) for line in open(sys.argv[2]) if line.strip()] or [float("nan")]
bandwidth = statistics.median(measured) * 1e9
print(f"generate bound: {bandwidth / 1e9:.1f} GB/s read bandwidth (median of {len(measured)} rounds, "
      f"{min(measured):.1f}-{max(measured):.1f}) / the weight bytes one step reads; share: q8's and llama.cpp's speed over it")
step = {t: int(b) for t, b in (line.split() for line in open(sys.argv[3]))}
for line in open(sys.argv[1]):
    tool, kind, case, speed, mb = line.strip().split("|")
    runs.setdefault((case, kind, tool), []).append(float(speed))
    rss[(case, kind, tool)] = max(rss.get((case, kind, tool), 0), int(mb))
tools = ("aligntds-q8", "aligntds-q", "llama.cpp")
print("| case | file | aligntds q8 | aligntds q | llama.cpp | q8 / llama.cpp | peak RSS MB (q8 / llama.cpp) | bound tokens/s (share q8 / llama.cpp) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
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
    bound = ""
    if case == "generate" and kind in step:
        b = bandwidth / step[kind]
        bound = f"{b:.1f} ({' / '.join(f'{med[t] / b:.0%}' if t in med else '-' for t in ('aligntds-q8', 'llama.cpp'))})"
    print(f"| {case} | {kind} | {' | '.join(cell)} | {ratio} | {mem} | {bound} |")
PY
