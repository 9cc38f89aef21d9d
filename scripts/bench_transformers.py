#!/usr/bin/env python3
"""The peer for examples/score_throughput.rs: transformers f32, one forward pass
over the same kind of sequence, then log_softmax over every position.

python3 scripts/bench_transformers.py MODEL_DIR [TOKENS] [REPEATS]
"""
import sys
import time

import torch
import transformers

model_dir = sys.argv[1]
length = int(sys.argv[2]) if len(sys.argv) > 2 else 512
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
torch.set_num_threads(torch.get_num_threads())
model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
vocab = len(transformers.AutoTokenizer.from_pretrained(model_dir))
ids = torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(0))
best = float("inf")
with torch.inference_mode():
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        took = time.perf_counter() - t0
        if i > 0:
            best = min(best, took)
print(f"transformers {transformers.__version__}, {torch.get_num_threads()} threads: {length} tokens: best {best:.3f} s = {length / best:.0f} tokens/s")
