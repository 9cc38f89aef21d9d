"""Quantizes a GGUF file with llama.cpp's own quantizer (llama-cpp-python's
llama_model_quantize), as `llama-quantize IN OUT TYPE` does: the benchmark
ladder's quantized files come from the peer they are compared with. Dev time
only (the benchmark venv: scripts/bench-setup.sh).

    python scripts/quantize_gguf.py IN.gguf OUT.gguf Q4_K_M|Q8_0|Q4_0
"""
import os
import sys

import llama_cpp

TYPES = {
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
}


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in TYPES:
        sys.exit(f"usage: quantize_gguf.py IN.gguf OUT.gguf {'|'.join(TYPES)}")
    src, dest, kind = sys.argv[1:]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = TYPES[kind]
    params.nthread = os.cpu_count() or 1
    rc = llama_cpp.llama_model_quantize(src.encode(), dest.encode(), params)
    if rc != 0:
        sys.exit(f"llama_model_quantize({src} -> {dest}, {kind}) failed with {rc}")


if __name__ == "__main__":
    main()
