#!/usr/bin/env bash
# Installs the benchmark peers into .venv-bench (git-ignored): transformers with
# CPU torch and gguf, and llama-cpp-python built for this CPU (needs a C/C++
# compiler; the build takes several minutes). Dev time only.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-bench
.venv-bench/bin/pip install --quiet --upgrade pip
# PyPI only (other indexes are unreachable here); its torch runs on CPU.
.venv-bench/bin/pip install --quiet torch transformers gguf accelerate
CMAKE_ARGS="-DGGML_NATIVE=ON" .venv-bench/bin/pip install --quiet llama-cpp-python
echo "peers installed in .venv-bench; run: bash scripts/bench.sh"
