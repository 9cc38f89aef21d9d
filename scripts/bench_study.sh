#!/usr/bin/env bash
# Whole-study benchmark, one process after another on this machine: a pair
# (chat context vs the zero-shot template, one model under both) analyzed by
# aligntds, then the same work (generate the answers, score both contexts) with
# vLLM's offline API and with transformers (scripts/bench_study_peers.py).
# Prints wall times, tokens/s per phase, peak RSS and aligntds's ratios.
#
#   bash scripts/bench_study.sh                 (the demo's SmolLM2-135M-Instruct: aligntds f32
#                                                and q on its Q4_1 GGUF; vLLM and transformers f32)
#   bash scripts/bench_study.sh --size 0.6b     (the ladder's random Qwen3-0.6B-shaped checkpoint:
#                                                aligntds f32 and bf16, and q8 on the ladder's Q8_0
#                                                file when made; transformers f32 and bf16; vLLM bf16)
#   QUERIES=8 MAX_NEW_TOKENS=64 bash scripts/bench_study.sh
#
# The 30 demo queries, 256 new tokens by default. Needs the vLLM venv
# (scripts/vllm-setup.sh, cached; it has transformers too).
set -euo pipefail
cd "$(dirname "$0")/.."
max_new=${MAX_NEW_TOKENS:-256}
limit=()
[ -n "${QUERIES:-}" ] && limit=(--limit "$QUERIES")
size=135m
[ "${1:-}" = "--size" ] && size=${2:?--size takes 0.6b}
venv="$(bash scripts/vllm-setup.sh | tail -1)"
if [ "$size" = 135m ]; then
  gguf=models/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -f "$gguf" ] || bash scripts/fetch-models.sh
  checkpoint="$HOME/.cache/aligntds/checkpoints/smollm2-135m-instruct-f32"
  "$venv/bin/python" scripts/vllm_checkpoint.py "$gguf" "$checkpoint" >/dev/null
  ours=("f32 $checkpoint" "q $gguf")
  peers=("vllm float32" "transformers float32")
  batch=1  # as the published table was measured: one query at a time
else
  # The ladder's checkpoint (scripts/bench_ladder.sh makes the same one).
  checkpoint="$HOME/.cache/aligntds/bench/$size"
  [ -f "$checkpoint/model.safetensors" ] ||
    "$venv/bin/python" scripts/make_fixtures.py --bench "$checkpoint" --bench-size "$size"
  ours=("f32 $checkpoint" "bf16 $checkpoint")
  q8=$HOME/.cache/aligntds/bench/gguf/$size.Q8_0.gguf
  [ -f "$q8" ] && ours+=("q8 $q8")
  # transformers generates the queries as one left-padded batch, as aligntds does.
  peers=("transformers float32" "transformers bfloat16" "vllm bfloat16")
  batch=${QUERIES:-30}
fi
cargo build --release --locked -q -p aligntds
out=target/bench-study
rm -rf "$out"
mkdir -p "$out"

measure() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$out/$name.time" "$@" >"$out/$name.out" 2>"$out/$name.err" ||
    { echo "error: $name failed:" >&2; tail -20 "$out/$name.err" >&2; exit 2; }
  echo "$name: $(cut -d' ' -f1 "$out/$name.time") s"
}

for entry in "${ours[@]}"; do
  read -r weights model <<<"$entry"
  measure "aligntds-$weights" ./target/release/aligntds analyze --aligned "$model" --base "$model" \
    --aligned-context chat --base-context template --data data/demo-instructions.jsonl "${limit[@]}" \
    --max-new-tokens "$max_new" --dtype "$weights" --out "$out/run-$weights" --quiet
done
for entry in "${peers[@]}"; do
  read -r tool dtype <<<"$entry"
  # vLLM's engine in this process, so its peak RSS is measured; offline and quiet.
  measure "$tool-$dtype" env VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=2 HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_LOGGING_LEVEL=WARNING \
    "$venv/bin/python" scripts/bench_study_peers.py "$tool" "$checkpoint" "$out/run-f32" "$max_new" "$dtype" "$batch"
done

"$venv/bin/python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def timed(name):
    wall, rss = open(out / f"{name}.time").read().split()[-2:]
    return float(wall), int(rss) / 1024
rows = []
# aligntds's runs, then the peers' (each group by name).
for w in sorted({p.name[len("aligntds-"):-len(".time")] for p in out.glob("aligntds-*.time")}):
    wall, rss = timed(f"aligntds-{w}")
    t = json.load(open(out / f"run-{w}" / "summary.json"))["manifest"]["timings"]
    tokens = t["aligned"]["scored_tokens"]
    rows.append((f"aligntds {w}", wall, rss, t["load_seconds"], None, None, tokens))
peers = sorted(p.name[:-len(".time")] for p in out.glob("*.time") if not p.name.startswith("aligntds-"))
for name in peers:
    wall, rss = timed(name)
    r = json.loads(open(out / f"{name}.out").read().strip().splitlines()[-1])
    p = r["phases"]
    rows.append((name.replace("-", " "), wall, rss, p["startup"], p["generate"], p["score_both_sides"],
                 r["generated_tokens"], r["answers_identical_to_aligntds"], r["answers"]))
print("| tool | wall (s) | start-up (s) | generate (s, tokens/s) | score both sides (s, tokens/s) | peak RSS (MB) | answers = aligntds f32 |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for row in rows:
    name, wall, rss, start, gen, score, tokens = row[:7]
    g = f"{gen:.1f} ({tokens / gen:.0f})" if gen else "(overlapped)"
    s = f"{score:.1f} ({2 * tokens / score:.0f})" if score else "(overlapped)"
    same = f"{row[7]}/{row[8]}" if len(row) > 7 else ""
    print(f"| {name} | {wall:.1f} | {start:.1f} | {g} | {s} | {rss:.0f} | {same} |")
ours = [r for r in rows if r[0].startswith("aligntds")]
for name, wall, *_ in (r for r in rows if not r[0].startswith("aligntds")):
    print(f"{name}: " + ", ".join(f"{o[0]} {wall / o[1]:.2f}x" for o in ours) + " (whole process, its wall / ours)")
PY
