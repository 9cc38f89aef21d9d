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
# Built for this CPU's vector units but not NATIVE: llama.cpp's native build
# turns on its AMX code, which crashed on the first eval on an Intel Xeon with
# AMX; AVX-512 (with VNNI and BF16 where the CPU has them) and AVX2 stay on.
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { case " $flags " in *" $1 "*) echo ON ;; *) echo OFF ;; esac; }
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=$(has avx) -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) \
  -DGGML_F16C=$(has f16c) -DGGML_AVX512=$(has avx512f) -DGGML_AVX512_VNNI=$(has avx512_vnni) \
  -DGGML_AVX512_BF16=$(has avx512_bf16) -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
  .venv-bench/bin/pip install --quiet llama-cpp-python
echo "peers installed in .venv-bench; run: bash scripts/bench.sh"
