#!/usr/bin/env python3
"""The peers of scripts/bench_study.sh: the same study work as an aligntds run,
done with vLLM's offline API or with transformers, on the same f32 checkpoint.

  bench_study_peers.py vllm|transformers CHECKPOINT RUN_DIR MAX_NEW_TOKENS

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


def run_vllm(checkpoint, records, max_new, started):
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=checkpoint, dtype="float32", max_model_len=2048, enforce_eager=True,
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


def run_transformers(checkpoint, records, max_new, started):
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count())
    tok = transformers.AutoTokenizer.from_pretrained(checkpoint)
    lm = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    phases = {"startup": time.perf_counter() - started}
    enc = lambda text: tok.encode(text, add_special_tokens=False)
    aligned = [enc(a) for a, _, _ in records]
    base = [enc(b) for _, b, _ in records]
    answers = []
    with torch.inference_mode():
        t = time.perf_counter()
        for p in aligned:
            out = lm.generate(torch.tensor([p]), do_sample=False, max_new_tokens=max_new,
                              pad_token_id=tok.eos_token_id)
            answers.append(out[0, len(p):].tolist())
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
    # Start-up counts the imports too, as a user waits for them.
    started = time.perf_counter()
    records = contexts(run_dir)
    if tool == "vllm":
        run_vllm(checkpoint, records, max_new, started)
    else:
        run_transformers(checkpoint, records, max_new, started)
