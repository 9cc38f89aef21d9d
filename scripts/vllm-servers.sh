#!/usr/bin/env bash
# Starts real vLLM servers (CPU build) on 127.0.0.1 for the remote-side tests,
# or stops them. `start N` installs vLLM when needed (scripts/vllm-setup.sh,
# cached), makes the SmolLM2-135M-Instruct f32 checkpoint from the real GGUF
# (cached outside git), starts N servers of it and waits until each answers;
# it writes target/vllm-servers.env (ALIGNTDS_VLLM_URLS, ALIGNTDS_VLLM_PIDS,
# ALIGNTDS_VLLM_CHECKPOINT) for the tests. `stop` ends the servers it started.
set -euo pipefail
cd "$(dirname "$0")/.."
state=target/vllm-servers.env
logs=target/vllm-logs
case "${1:-}" in
  stop)
    if [ -f "$state" ]; then
      . "$state"
      for pid in ${ALIGNTDS_VLLM_PIDS//,/ }; do
        # The API server's engine process is its child: end the whole group.
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      done
      rm -f "$state"
    fi
    exit 0 ;;
  start) count="${2:-2}" ;;
  *) echo "usage: $0 start [N] | stop" >&2; exit 2 ;;
esac
venv="$(bash scripts/vllm-setup.sh | tail -1)"
gguf=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || bash scripts/fetch-models.sh
checkpoint="$HOME/.cache/aligntds/checkpoints/smollm2-135m-instruct-f32"
"$venv/bin/python" scripts/vllm_checkpoint.py "$gguf" "$checkpoint" >/dev/null
bash "$0" stop
mkdir -p "$logs"
base_port="${ALIGNTDS_VLLM_PORT:-8711}"
urls=() pids=()
for i in $(seq 0 $((count - 1))); do
  port=$((base_port + i))
  # --enforce-eager: no graph compilation, so a server starts in about a minute.
  VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 \
    setsid "$venv/bin/python" -m vllm.entrypoints.openai.api_server \
      --model "$checkpoint" --served-model-name smollm2 --host 127.0.0.1 --port "$port" \
      --dtype float32 --max-model-len 2048 --max-logprobs 50 --enforce-eager \
      >"$logs/server-$port.log" 2>&1 &
  pids+=("$!")
  urls+=("http://127.0.0.1:$port")
done
{
  echo "ALIGNTDS_VLLM_URLS=$(IFS=,; echo "${urls[*]}")"
  echo "ALIGNTDS_VLLM_PIDS=$(IFS=,; echo "${pids[*]}")"
  echo "ALIGNTDS_VLLM_CHECKPOINT=$checkpoint"
} > "$state"
for i in "${!urls[@]}"; do
  url="${urls[$i]}"
  for _ in $(seq 1 600); do
    if curl -sf "$url/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "error: the vLLM server for $url exited; its log:" >&2
      tail -30 "$logs/server-${url##*:}.log" >&2
      exit 2
    fi
    sleep 1
  done
  curl -sf "$url/health" >/dev/null || { echo "error: $url did not become ready in 10 minutes" >&2; exit 2; }
  echo "vLLM ready at $url"
done
