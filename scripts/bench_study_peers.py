#!/usr/bin/env python3
"""The peers of scripts/bench_study.sh: the same study work as an aligntds run,
done with vLLM's offline API or with transformers, on the same checkpoint.

  bench_study_peers.py vllm|transformers CHECKPOINT RUN_DIR MAX_NEW_TOKENS [DTYPE [BATCH]]

DTYPE is float32 (the default) or bfloat16. BATCH (transformers only; default 1)
is how many queries generate together, left-padded as transformers batches them.

RUN_DIR is the aligntds run of the same queries (its examples.jsonl gives the
rendered contexts of both sides, tokenized here with the checkpoint's
tokenizer, and the answers to compare with). The work: generate every answer
greedily from the aligned context, then score context + answer on both sides
(vLLM: prompt_logprobs=10, its way of returning per-position distributions;
transformers: one forward pass and a log-softmax over the answer rows).
Prints one JSON object: seconds and tokens per phase, and how many answers
equal aligntds's.
"""
import json
import os
import sys
import time
from pathlib import Path


def contexts(run_dir):
    lines = [json.loads(l) for l in open(Path(run_dir) / "examples.jsonl")]
    return [(e["aligned_context"], e["base_context"], e["answer_ids"]) for e in lines]


def report(tool, started, phases, answers, reference):
    same = sum(a == r for a, r in zip(answers, reference))
    out = {
        "tool": tool,
        "seconds": time.perf_counter() - started,
        "phases": phases,
        "answers": len(answers),
        "answers_identical_to_aligntds": same,
        "generated_tokens": sum(len(a) for a in answers),
    }
    print(json.dumps(out))


def run_vllm(checkpoint, records, max_new, started, dtype):
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=checkpoint, dtype=dtype, max_model_len=2048, enforce_eager=True,
              max_logprobs=20, seed=0)
    tok = llm.get_tokenizer()
    phases = {"startup": time.perf_counter() - started}
    enc = lambda text: tok.encode(text, add_special_tokens=False)
    aligned = [enc(a) for a, _, _ in records]
    base = [enc(b) for _, b, _ in records]
    t = time.perf_counter()
    outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in aligned],
                        SamplingParams(temperature=0.0, max_tokens=max_new), use_tqdm=False)
    answers = [list(o.outputs[0].token_ids) for o in outs]
    phases["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    score = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=10)
    for side in (aligned, base):
        llm.generate([TokensPrompt(prompt_token_ids=p + a) for p, a in zip(side, answers)], score,
                     use_tqdm=False)
    phases["score_both_sides"] = time.perf_counter() - t
    report("vllm", started, phases, answers, [r for _, _, r in records])


def run_transformers(checkpoint, records, max_new, started, dtype, batch):
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count())
    tok = transformers.AutoTokenizer.from_pretrained(checkpoint, padding_side="left")
    lm = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=getattr(torch, dtype)).eval()
    phases = {"startup": time.perf_counter() - started}
    enc = lambda text: tok.encode(text, add_special_tokens=False)
    aligned = [enc(a) for a, _, _ in records]
    base = [enc(b) for _, b, _ in records]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    answers = []
    with torch.inference_mode():
        t = time.perf_counter()
        for i in range(0, len(aligned), batch):
            group = aligned[i:i + batch]
            width = max(map(len, group))
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in group])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in group])
            out = lm.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new, pad_token_id=pad)
            for row in out[:, width:].tolist():
                # A finished row is padded on; its answer ends at the end of turn, which it keeps.
                end = next((k + 1 for k, x in enumerate(row) if x == tok.eos_token_id), len(row))
                answers.append(row[:end])
        phases["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        for side in (aligned, base):
            for p, a in zip(side, answers):
                logits = lm(torch.tensor([p + a])).logits[0, len(p) - 1:-1]
                torch.log_softmax(logits.float(), dim=-1).topk(10, dim=-1)
        phases["score_both_sides"] = time.perf_counter() - t
    report("transformers", started, phases, answers, [r for _, _, r in records])


if __name__ == "__main__":
    tool, checkpoint, run_dir, max_new = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    dtype = sys.argv[5] if len(sys.argv) > 5 else "float32"
    batch = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    # Start-up counts the imports too, as a user waits for them.
    started = time.perf_counter()
    records = contexts(run_dir)
    if tool == "vllm":
        run_vllm(checkpoint, records, max_new, started, dtype)
    else:
        run_transformers(checkpoint, records, max_new, started, dtype, batch)
