#!/usr/bin/env bash
# Whole-study benchmark, one process after another on this machine: the demo
# pair (SmolLM2-135M-Instruct, chat context vs the zero-shot template) analyzed
# by aligntds on the f32 checkpoint and on the Q4_1 GGUF, then the same work
# (generate the answers, score both contexts) with vLLM's offline API and with
# transformers on the same f32 weights (scripts/bench_study_peers.py). Prints
# wall times, tokens/s per phase, peak RSS and aligntds's ratios.
#
#   bash scripts/bench_study.sh                 (the 30 demo queries, 256 new tokens)
#   QUERIES=8 MAX_NEW_TOKENS=64 bash scripts/bench_study.sh
#
# Needs the vLLM venv (scripts/vllm-setup.sh, cached; it has transformers too).
set -euo pipefail
cd "$(dirname "$0")/.."
max_new=${MAX_NEW_TOKENS:-256}
limit=()
[ -n "${QUERIES:-}" ] && limit=(--limit "$QUERIES")
venv="$(bash scripts/vllm-setup.sh | tail -1)"
gguf=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || bash scripts/fetch-models.sh
checkpoint="$HOME/.cache/aligntds/checkpoints/smollm2-135m-instruct-f32"
"$venv/bin/python" scripts/vllm_checkpoint.py "$gguf" "$checkpoint" >/dev/null
cargo build --release --locked -q -p aligntds
out=target/bench-study
rm -rf "$out"
mkdir -p "$out"

# measure NAME COMMAND...: wall seconds and peak RSS of one process, its stdout kept.
measure() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$out/$name.time" "$@" >"$out/$name.out" 2>"$out/$name.err" ||
    { echo "error: $name failed:" >&2; tail -20 "$out/$name.err" >&2; exit 2; }
  echo "$name: $(cut -d' ' -f1 "$out/$name.time") s"
}

for weights in f32 q; do
  model=$checkpoint
  [ "$weights" = q ] && model=$gguf
  measure "aligntds-$weights" ./target/release/aligntds analyze --aligned "$model" --base "$model" \
    --aligned-context chat --base-context template --data data/demo-instructions.jsonl "${limit[@]}" \
    --max-new-tokens "$max_new" --dtype "$weights" --out "$out/run-$weights" --quiet
done
# vLLM's engine in this process, so its peak RSS is measured; offline and quiet.
measure vllm env VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=2 HF_HUB_OFFLINE=1 \
  VLLM_NO_USAGE_STATS=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_LOGGING_LEVEL=WARNING \
  "$venv/bin/python" scripts/bench_study_peers.py vllm "$checkpoint" "$out/run-f32" "$max_new"
measure transformers env HF_HUB_OFFLINE=1 \
  "$venv/bin/python" scripts/bench_study_peers.py transformers "$checkpoint" "$out/run-f32" "$max_new"

"$venv/bin/python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def timed(name):
    wall, rss = open(out / f"{name}.time").read().split()[-2:]
    return float(wall), int(rss) / 1024
rows = []
for w in ("f32", "q"):
    wall, rss = timed(f"aligntds-{w}")
    t = json.load(open(out / f"run-{w}" / "summary.json"))["manifest"]["timings"]
    tokens = t["aligned"]["scored_tokens"]
    rows.append((f"aligntds {w}", wall, rss, t["load_seconds"], None, None, tokens))
for tool in ("vllm", "transformers"):
    wall, rss = timed(tool)
    r = json.loads(open(out / f"{tool}.out").read().strip().splitlines()[-1])
    p = r["phases"]
    rows.append((f"{tool} f32", wall, rss, p["startup"], p["generate"], p["score_both_sides"],
                 r["generated_tokens"], r["answers_identical_to_aligntds"], r["answers"]))
print("| tool | wall (s) | start-up (s) | generate (s, tokens/s) | score both sides (s, tokens/s) | peak RSS (MB) | answers = aligntds |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for row in rows:
    name, wall, rss, start, gen, score, tokens = row[:7]
    g = f"{gen:.1f} ({tokens / gen:.0f})" if gen else "(overlapped)"
    s = f"{score:.1f} ({2 * tokens / score:.0f})" if score else "(overlapped)"
    same = f"{row[7]}/{row[8]}" if len(row) > 7 else ""
    print(f"| {name} | {wall:.1f} | {start:.1f} | {g} | {s} | {rss:.0f} | {same} |")
f32 = rows[0][1]
for name, wall, *_ in rows[2:]:
    print(f"aligntds f32 whole process vs {name}: {wall / f32:.2f}x")
PY
