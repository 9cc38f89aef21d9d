#!/usr/bin/env python3
"""Goldens from llama.cpp itself for `--dtype q8` (8-bit activations against
GGUF blocks, llama.cpp's arithmetic). Dev time only, in the benchmark venv
(scripts/bench-setup.sh builds llama-cpp-python):

    .venv-bench/bin/python scripts/make_llamacpp_goldens.py

Writes the tiny llama3 fixture (fixtures/llama3, safetensors) as an f32 GGUF with
its vocabulary padded to the embedding's rows (as convert_hf_to_gguf pads it;
llama.cpp refuses the unpadded fixtures/llama3.gguf), quantizes that with
llama.cpp's own quantizer to Q8_0 and Q4_0 (fixtures/llama3.q8_0.gguf,
llama3.q4_0.gguf), and a wider random checkpoint of the same family and
tokenizer (hidden 256, intermediate 512: K-quant rows are 256 values, wider
than the fixture's 64) to Q4_K_M (fixtures/llama3-256.q4_k_m.gguf: Q4_K and
Q6_K tensors, whose activations llama.cpp quantizes per 256 as Q8_K),
then feeds llama.cpp a fixed prompt one token at a time and extends it greedily,
every token a decode step as aligntds's generation takes it, with an f32 KV
cache and no flash attention (so the difference left is the products'), and
again all at once in one batch (a teacher-forced pass). Writes
fixtures/llamacpp/<model>.<type>.json: the tokens and, per step (`steps`) and
per position of the one pass (`one_pass`), the top-20 ids and log-probabilities
of the next token; and (`forced`) a 121-token sequence that is not the greedy
answer (llama.cpp's rank-1, 2, 3, 4, 12 and 200 tokens in turn), with each next
token's rank over the whole vocabulary and its log-probability (a study's
ranks and categories).
"""
import json
import math
import sys
from pathlib import Path

import shutil
import tempfile

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import write_gguf  # noqa: E402 (needs torch and gguf, as make_fixtures.py does)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
OUT = FIXTURES / "llamacpp"
PROMPT = [1, 17, 230, 41, 99, 310, 7, 58]
NEW_TOKENS = 40
# The forced sequence: its length, and the ranks its tokens take in turn.
FORCED_LEN = 121
RANK_CYCLE = [1, 2, 1, 3, 4, 1, 12, 200]
# (model, type): the files quantized and the goldens written.
CASES = [("llama3", "q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0),
         ("llama3", "q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0),
         ("llama3-256", "q4_k_m", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)]
WIDE = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 64}


def quantize(src: Path, dest: Path, ftype: int):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 1
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), params) != 0:
        sys.exit(f"llama_model_quantize failed for {dest}")


def log_softmax(logits):
    top = max(logits)
    total = math.log(sum(math.exp(v - top) for v in logits)) + top
    return [v - total for v in logits]


def steps(path: Path):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=1, n_threads=1, logits_all=True,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                          flash_attn=False, verbose=False)
    tokens, out = list(PROMPT), []
    for i in range(len(PROMPT) + NEW_TOKENS):
        llm.eval([tokens[i]])
        row = log_softmax(list(llm.eval_logits[-1]))
        order = sorted(range(len(row)), key=lambda j: -row[j])[:20]
        out.append({"top_ids": order, "top_logprobs": [round(row[j], 6) for j in order]})
        if i + 1 == len(tokens):
            tokens.append(order[0])
    return tokens[:len(PROMPT) + NEW_TOKENS], out


def one_pass(path: Path, tokens):
    """The same tokens in one batch, as a teacher-forced pass takes them (llama.cpp's
    batched products: the same 8-bit activations, its own summation order)."""
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=len(tokens), n_ubatch=len(tokens),
                          n_threads=1, logits_all=True, type_k=llama_cpp.GGML_TYPE_F32,
                          type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False, verbose=False)
    llm.eval(tokens)
    out = []
    for i in range(len(tokens)):
        row = log_softmax([float(v) for v in llm.scores[i]])
        order = sorted(range(len(row)), key=lambda j: -row[j])[:20]
        out.append({"top_ids": order, "top_logprobs": [round(row[j], 6) for j in order]})
    return out


def wide_checkpoint(dest: Path) -> Path:
    """The llama3 fixture's family and tokenizer at hidden 256, random weights
    (transformers' initialisation, seed 0): rows as wide as a K-quant block."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = json.loads((FIXTURES / "llama3" / "config.json").read_text())
    cfg.update(WIDE)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**cfg)).save_pretrained(dest)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(FIXTURES / "llama3" / name, dest / name)
    return dest


def forced_ranks(path: Path):
    """A sequence that is not the greedy answer, fed one token at a time
    (llama.cpp's decode arithmetic): after the prompt each next token is the
    one llama.cpp ranks RANK_CYCLE[i % 8] (every category, ranks to 200). Per
    position, the next token's rank over the whole vocabulary (1 + the ids with
    a higher log-probability) and its log-probability: what a study keeps."""
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=FORCED_LEN + 8, n_batch=1, n_threads=1,
                          logits_all=True, type_k=llama_cpp.GGML_TYPE_F32,
                          type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False, verbose=False)
    tokens, ranks, logprobs = list(PROMPT), [], []
    for i in range(FORCED_LEN - 1):
        llm.eval([tokens[i]])
        row = log_softmax(list(llm.eval_logits[-1]))
        if i + 1 == len(tokens):
            order = sorted(range(len(row)), key=lambda j: -row[j])
            tokens.append(order[RANK_CYCLE[i % len(RANK_CYCLE)] - 1])
        target = row[tokens[i + 1]]
        ranks.append(1 + sum(v > target for v in row))
        logprobs.append(round(target, 6))
    return {"tokens": tokens, "ranks": ranks, "logprobs": logprobs}


def main():
    OUT.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    sources = {"llama3": FIXTURES / "llama3", "llama3-256": wide_checkpoint(tmp / "llama3-256")}
    for model, name, ftype in CASES:
        padded = tmp / f"{model}.f32.gguf"
        if not padded.exists():
            write_gguf.write(sources[model], padded, pad_vocab=True)
        gguf = FIXTURES / f"{model}.{name}.gguf"
        quantize(padded, gguf, ftype)
        tokens, rows = steps(gguf)
        golden = {"llama_cpp_python": llama_cpp.__version__, "file": gguf.name,
                  "system_info": llama_cpp.llama_print_system_info().decode().strip(),
                  "tokens": tokens, "steps": rows, "one_pass": one_pass(gguf, tokens),
                  "forced": forced_ranks(gguf)}
        (OUT / f"{model}.{name}.json").write_text(json.dumps(golden) + "\n")
        print(f"wrote fixtures/llamacpp/{model}.{name}.json ({len(rows)} steps)")


if __name__ == "__main__":
    main()
