#!/usr/bin/env python3
"""Makes a Hugging Face checkpoint folder (f32 safetensors, tokenizer, config)
from a GGUF file with transformers, for a vLLM server to serve the same weights
the local engine reads from that GGUF. Dev and CI time only; the folder stays
outside git. Usage: vllm_checkpoint.py MODEL.gguf OUT_DIR"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
if (out / "model.safetensors").is_file():
    print(out)
    sys.exit(0)
model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
tmp = out.with_name(out.name + ".partial")
tmp.mkdir(parents=True, exist_ok=True)
# transformers marks a GGUF-loaded model as quantized and refuses save_pretrained;
# the weights are plain f32 tensors by now, so they are written directly.
state = model.state_dict()
if model.config.tie_word_embeddings:
    state.pop("lm_head.weight", None)
save_file({k: v.contiguous() for k, v in state.items()}, tmp / "model.safetensors", metadata={"format": "pt"})
config = model.config
if hasattr(config, "quantization_config"):
    del config.quantization_config
config.dtype = "float32"
config.save_pretrained(tmp)
model.generation_config.save_pretrained(tmp)
tokenizer.save_pretrained(tmp)
tmp.rename(out)
print(out)
