#!/usr/bin/env python3
"""The peers for `aligntds bench` (aligntds_engine::bench), on the same GGUF
file and the same token ids:

  bench_peers.py transformers score|generate MODEL.gguf|CHECKPOINT_DIR [TOKENS] [REPEATS]
  bench_peers.py llama.cpp    score|generate MODEL.gguf [TOKENS] [REPEATS]

transformers loads the GGUF dequantized to f32 (the weights aligntds uses with
--dtype f32), or a checkpoint folder in BENCH_DTYPE (f32, the default, or bf16:
the weights aligntds uses with --dtype bf16); llama.cpp (llama-cpp-python) runs the file as it is (aligntds
--dtype q). Scoring: one forward pass over TOKENS pseudo-random ids with logits
for every position (transformers then log_softmax over every row, as aligntds
does; llama.cpp's time is its forward pass alone). Generation: greedy, TOKENS
new tokens after a short prompt. Prints `... = N tokens/s` like aligntds bench.
"""
import os
import sys
import time
from pathlib import Path

tool, case, model = sys.argv[1], sys.argv[2], Path(sys.argv[3])
length = int(sys.argv[4]) if len(sys.argv) > 4 else (512 if case == "score" else 128)
repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 3
threads = int(os.environ.get("BENCH_THREADS", os.cpu_count()))
dtype_name = os.environ.get("BENCH_DTYPE", "f32")
PROMPT = "The three primary colors are"


def token_ids(n, vocab):
    # The xorshift sequence of aligntds_engine::bench::pseudo_random_tokens.
    state, out, mask = 0x2545F4914F6CDD1D, [], (1 << 64) - 1
    for _ in range(n):
        state ^= (state << 13) & mask
        state ^= state >> 7
        state ^= (state << 17) & mask
        out.append(state % vocab)
    return out


def best_of(run):
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        run()
        if i > 0:
            times.append(time.perf_counter() - t0)
    return min(times)


if tool == "transformers":
    import torch
    import transformers

    torch.set_num_threads(threads)
    # A GGUF file dequantized to f32, or a checkpoint folder as it is.
    where = dict(pretrained_model_name_or_path=model) if model.is_dir() else \
        dict(pretrained_model_name_or_path=model.parent, gguf_file=model.name)
    tok = transformers.AutoTokenizer.from_pretrained(**where)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    lm = transformers.AutoModelForCausalLM.from_pretrained(**where, dtype=dtype).eval()
    label = f"transformers {transformers.__version__} {dtype_name}, {threads} threads"
    with torch.inference_mode():
        if case == "score":
            ids = torch.tensor([token_ids(length, len(tok))])
            best = best_of(lambda: torch.log_softmax(lm(ids).logits[0, :-1].float(), dim=-1))
        else:
            prompt = tok(PROMPT, return_tensors="pt")
            best = best_of(lambda: lm.generate(**prompt, do_sample=False, max_new_tokens=length, min_new_tokens=length))
elif tool == "llama.cpp":
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model), n_ctx=max(2048, length + 64), n_batch=max(512, length), n_threads=threads,
                          n_threads_batch=threads, logits_all=(case == "score"), verbose=False)
    label = f"llama-cpp-python {llama_cpp.__version__} (GGUF as is), {threads} threads"
    if case == "score":
        ids = token_ids(length, llm.n_vocab())

        def score():
            llm.reset()
            llm.eval(ids)
        best = best_of(score)
    else:
        prompt = llm.tokenize(PROMPT.encode())

        def generate():
            llm.reset()
            n = 0
            for _ in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
                n += 1
                if n == length:
                    break
        best = best_of(generate)
else:
    sys.exit(f"unknown tool {tool}: use transformers or llama.cpp")
print(f"{case} {length} tokens ({label}): best {best:.3f} s = {length / best:.1f} tokens/s")
