#!/usr/bin/env python3
"""Goldens for the two real GGUF models, made with transformers loading the same
GGUF files (it dequantizes them to f32). Dev time only:

    bash scripts/fetch-models.sh
    pip install torch transformers gguf accelerate
    python3 scripts/make_real_goldens.py

Writes fixtures/real/<name>.json: per position top-20 ids and log-probabilities
for a few chat and plain sequences, tokenizations of a varied text sample, the
rendered chat template (SmolLM2) and a 64-token greedy generation.

`--bf16` instead writes fixtures/real/<name>.bf16.json: the same sequences
scored by transformers in bf16 (the GGUF dequantized to bf16), at the ids of
<name>.json's f32 top-20 and target, and how far those are from f32: the bar aligntds's
bf16 is held to (no further from f32 than transformers' own bf16).
"""
import sys
import json
from pathlib import Path

import torch
import transformers

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
OUT = ROOT / "fixtures" / "real"

TEXTS = [
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "Привет, мир! Это тест. 日本語のテキストと中文混合。 مرحبا بالعالم",
    "Emoji: 🙂🚀👩‍👩‍👧 and flags 🇫🇷, math ∑∫√ and accents: naïve café Ångström",
    "Runs of spaces:  two,   three,    four;\ttab\t\tand\n\n\nnewlines   ",
    "Special strings: <|im_start|>user\nhi<|im_end|> <bos><eos> <start_of_turn> </s> <s>",
    "   leading spaces and a URL https://example.com/a?b=c&d=e#f",
    "Numbers 1234567890 3.14159 1e-9 and ALL CAPS, CamelCase, snake_case.",
]

QUERIES = [
    "What are the names of some famous actors that started their careers on Broadway?",
    "Explain why the sky is blue in two sentences.",
]
ANSWER = " Sure! Here is a short answer: the sky looks blue because air molecules scatter blue light more than red light."


def topk(model, ids, start, k=20):
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    rows = []
    for t in range(start, len(ids)):
        top = torch.topk(logp[t - 1], k)
        rows.append({"top_ids": top.indices.tolist(), "top_logprobs": [round(x, 6) for x in top.values.tolist()],
                     "target_logprob": round(logp[t - 1, ids[t]].item(), 6)})
    return {"tokens": ids, "start": start, "positions": rows}


def build(name, gguf_file, chat):
    tok = transformers.AutoTokenizer.from_pretrained(MODELS, gguf_file=gguf_file)
    model = transformers.AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=gguf_file, dtype=torch.float32).eval()
    sequences = []
    for query in QUERIES:
        if chat:
            prompt = tok.apply_chat_template([{"role": "user", "content": query}], tokenize=False, add_generation_prompt=True)
        else:
            prompt = "# Query:\n```" + query + "```\n\n# Answer:\n```"
        prompt_ids = tok(prompt, add_special_tokens=not chat)["input_ids"]
        answer_ids = tok(ANSWER, add_special_tokens=False)["input_ids"]
        sequences.append(topk(model, prompt_ids + answer_ids, len(prompt_ids)))
    golden = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "file": gguf_file,
        "sequences": sequences,
        "tokenization": [{"text": t, "ids": tok(t)["input_ids"], "ids_plain": tok(t, add_special_tokens=False)["input_ids"],
                          "decoded": tok.decode(tok(t, add_special_tokens=False)["input_ids"])} for t in TEXTS],
    }
    if chat:
        messages = [{"role": "user", "content": QUERIES[0]}]
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = tok(rendered, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=64, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True)
        new = out.sequences[0, len(prompt_ids):].tolist()
        golden["chat"] = {"messages": messages, "rendered": rendered}
        golden["generation"] = {"prompt": prompt_ids, "tokens": new,
                                "logprobs": [round(torch.log_softmax(s[0].double(), -1)[t].item(), 6) for s, t in zip(out.scores, new)],
                                "text": tok.decode(new, skip_special_tokens=True)}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(golden, ensure_ascii=False) + "\n")
    print(f"wrote fixtures/real/{name}.json")


def build_bf16(name, gguf_file):
    import subprocess
    import tempfile

    golden = json.loads((OUT / f"{name}.json").read_text())
    # transformers keeps a GGUF file's weights quantized whatever dtype is asked
    # for, so the file goes through an f32 checkpoint first (as for vLLM), and
    # that loads with its weights rounded to bf16, as aligntds --dtype bf16 does.
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "vllm_checkpoint.py"), str(MODELS / gguf_file), folder],
                       check=True, stdout=subprocess.DEVNULL)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    sequences, worst = [], 0.0
    for seq in golden["sequences"]:
        ids, start = seq["tokens"], seq["start"]
        with torch.no_grad():
            # As a bf16 user computes them: bf16 logits, log-softmax in f32.
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        rows = []
        for t, pos in zip(range(start, len(ids)), seq["positions"]):
            got = [round(logp[t - 1, i].item(), 6) for i in pos["top_ids"]]
            target = round(logp[t - 1, ids[t]].item(), 6)
            worst = max(worst, abs(target - pos["target_logprob"]),
                        max(abs(a - b) for a, b in zip(got, pos["top_logprobs"])))
            rows.append({"top_logprobs": got, "target_logprob": target})
        sequences.append({"positions": rows})
    out = {"transformers": transformers.__version__, "torch": torch.__version__, "file": gguf_file,
           "max_abs_delta_from_f32": round(worst, 6), "sequences": sequences}
    (OUT / f"{name}.bf16.json").write_text(json.dumps(out) + "\n")
    print(f"wrote fixtures/real/{name}.bf16.json: transformers bf16 within {worst:.4f} of f32 (top-20 and target)")


if __name__ == "__main__":
    torch.manual_seed(0)
    if "--bf16" in sys.argv:
        build_bf16("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
        build_bf16("gemma3", "gemma-3-270m-q4_k_m.gguf")
    else:
        build("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", chat=True)
        build("gemma3", "gemma-3-270m-q4_k_m.gguf", chat=False)
