#!/usr/bin/env python3
"""Builds the tiny random-weight test checkpoints and their transformers goldens.

Dev time only (not run by CI): `pip install torch transformers tokenizers gguf`, then
`python3 scripts/make_fixtures.py` (every fixture) or `--only NAME...` (just those,
leaving the others' files byte for byte). Writes fixtures/<name>/ (a Hugging Face
checkpoint) and fixtures/<name>/goldens.json, plus fixtures/tokenizers.json and
fixtures/templates.json. Re-running with the same package versions reproduces
the files. `--bench DIR` instead writes a random checkpoint for throughput
measurements (not committed): SmolLM2-135M-shaped (about 540 MB), or with
`--bench-size 0.6b|1b` the real shapes of Qwen3-0.6B (2.4 GB) and Llama-3.2-1B
(4.9 GB) in f32, or with `7b` Llama-2-7B's shape with no weights (config and
tokenizer, for write_gguf.write_random; scripts/bench.sh --size makes them itself).
"""
import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures"
SHARED = ROOT.parent / "shared" / "data" / "just-eval-1000.llama-2-7b-chat.json"

LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# A template written the way recent models write theirs: whitespace control by
# trim_blocks/lstrip_blocks, loop controls, namespace, tojson, strftime_now.
TOOLISH_TEMPLATE = """{%- set ns = namespace(system='') %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
        {%- set ns.system = message['content'] %}
        {%- continue %}
    {%- endif %}
<|im_start|>{{ message['role'] }}
{{ message['content'] | trim }}<|im_end|>
{% endfor %}
{%- if ns.system %}
<|im_start|>meta
{{ {'system': ns.system, 'n': messages | length, 'tags': ['a', "b\\"c", 1.5, none, true]} | tojson }}
{{ {'x': [1, 2]} | tojson(indent=2) }}<|im_end|>
{% endif %}
{%- if add_generation_prompt %}
<|im_start|>assistant
{% endif %}"""

QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

SMOLLM2_TEMPLATE = (ROOT / "crates/engine/templates/smollm2.jinja").read_text()
FAMILY_TEMPLATES = ROOT / "scripts/fixture_templates"


def family_template(name):
    return (FAMILY_TEMPLATES / f"{name}.jinja").read_text()


def corpus():
    if SHARED.exists():
        rows = json.loads(SHARED.read_text())[:300]
        return [r["pure_input"] for r in rows] + [r["output"][0] for r in rows]
    return [transformers.__doc__ or "hello world"] * 10


def train_sentencepiece_like(texts, size):
    """Llama-style: metaspace, byte fallback, <unk> <s> </s>, BOS via the post-processor."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=80, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    data = json.loads(tok.to_str())
    learned = data["model"]["vocab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for token, _ in sorted(learned.items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def train_byte_level(texts, size):
    """Qwen2-style byte-level BPE with ChatML specials and no BOS. The pipeline is
    exactly the one transformers' Qwen2Tokenizer rebuilds around the vocabulary,
    so AutoTokenizer and the tokenizer.json itself agree."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def save_tokenizer(tok, out, config):
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 256, **config}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def perturb(model, seed):
    """Random weights with every parameter non-trivial (norm weights off 1, biases off 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


FIXTURES = {
    # Llama 2 style: MHA, untied, older config keys, sharded weights, logits wider than the tokenizer.
    "llama2": dict(
        cls="LlamaConfig", tokenizer="sp",
        config=dict(vocab_size=640, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                    rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
        old_rope=dict(rope_theta=10000.0, rope_scaling=None), shard=True,
        template=dict(chat_template=[{"name": "default", "template": LLAMA2_CHAT_TEMPLATE},
                                     {"name": "toolish", "template": TOOLISH_TEMPLATE}]),
    ),
    # Llama 3 style: GQA, tied embeddings, llama3 rope scaling (new rope_parameters key), chat_template.jinja.
    "llama3": dict(
        cls="LlamaConfig", tokenizer="sp",
        config=dict(vocab_size=620, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256,
                    rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                    rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                         high_freq_factor=4.0, original_max_position_embeddings=32)),
        jinja=TOOLISH_TEMPLATE,
    ),
    # Mistral: sliding window (5) shorter than the test sequences, head_dim not hidden/heads, GQA.
    "mistral": dict(
        cls="MistralConfig", tokenizer="sp",
        config=dict(vocab_size=620, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=256,
                    rms_norm_eps=1e-5, sliding_window=5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
        template=dict(chat_template=LLAMA2_CHAT_TEMPLATE),
    ),
    # Qwen2: q/k/v bias, tied embeddings, GQA, byte-level BPE, ChatML, no BOS.
    "qwen2": dict(
        cls="Qwen2Config", tokenizer="bl",
        config=dict(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                    rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
                    bos_token_id=None, eos_token_id=2, rope_theta=1000000.0),
        template=dict(chat_template=SMOLLM2_TEMPLATE),
    ),
    # Gemma 3: sliding (window 4) and full layers with their own rope bases (linear scaling on full),
    # q/k norms, sandwich norms, (1 + w) norms, scaled embeddings, query_pre_attn_scalar != head_dim,
    # final logit soft-capping, and attn_logit_softcapping set (transformers ignores it for Gemma 3; so must we).
    "gemma3": dict(
        cls="Gemma3TextConfig", tokenizer="sp",
        config=dict(vocab_size=640, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=256,
                    rms_norm_eps=1e-6, sliding_window=4, query_pre_attn_scalar=24,
                    layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
                    rope_parameters={"full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                    final_logit_softcapping=30.0, attn_logit_softcapping=20.0,
                    tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0),
        template=dict(chat_template=LLAMA2_CHAT_TEMPLATE),
    ),
    # Qwen3: per-head q/k norms, no q/k/v bias, untied embeddings, head_dim (24) apart from
    # hidden / heads (16), Qwen3's template with its thinking switch and <think> tokens.
    "qwen3": dict(
        cls="Qwen3Config", tokenizer="bl", specials=[], added=["<think>", "</think>"],
        config=dict(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=256,
                    rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
                    bos_token_id=None, eos_token_id=2, rope_theta=1000000.0),
        template=dict(chat_template=family_template("qwen3")),
    ),
    # OLMo 2: norms after attention and MLP only, q/k norms over the whole projections, Tulu template.
    "olmo2": dict(
        cls="Olmo2Config", tokenizer="bl", specials=["<|system|>", "<|user|>", "<|assistant|>"],
        config=dict(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                    rms_norm_eps=1e-6, tie_word_embeddings=False, pad_token_id=None,
                    bos_token_id=0, eos_token_id=0, rope_theta=500000.0),
        tokens=dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"),
        template=dict(chat_template=family_template("olmo2")),
    ),
    # Gemma 2: sliding (window 5, shorter than the test sequences) and global layers alternating
    # (transformers' default layer pattern), attention-logit and final-logit soft-capping set low
    # enough to bite, sandwich (1 + w) norms, scaled embeddings, query_pre_attn_scalar (16) apart
    # from head_dim (24); its template refuses a system role.
    "gemma2": dict(
        cls="Gemma2Config", tokenizer="sp", specials=["<start_of_turn>", "<end_of_turn>"], gemma_style=True,
        config=dict(vocab_size=640, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=256,
                    rms_norm_eps=1e-6, sliding_window=5, query_pre_attn_scalar=16,
                    attn_logit_softcapping=4.0, final_logit_softcapping=6.0,
                    tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0),
        template=dict(chat_template=family_template("gemma2")),
    ),
    # Phi-3.5-mini: fused qkv and gate_up projections, a sliding window (40) on every layer, and
    # LongRoPE with an original context of 32, so the 48-token sequences take the long factors
    # and the 30-token one and the generation (28 positions) the short ones.
    "phi3": dict(
        cls="Phi3Config", tokenizer="sp", specials=["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        config=dict(vocab_size=640, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                    original_max_position_embeddings=32, rms_norm_eps=1e-5, sliding_window=40,
                    rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                                         original_max_position_embeddings=32,
                                         short_factor=[1.0, 1.05, 1.1, 1.3, 1.6, 2.0, 2.4, 3.0],
                                         long_factor=[1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 13.0, 18.0]),
                    tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0),
        tokens=dict(eos_token="<|end|>"),
        template=dict(chat_template=family_template("phi3")),
        short_sequence=30,
    ),
}

TEXTS = [
    "Hello world",
    " leading space and  double  spaces",
    "Line one\nLine two\n\n  indented",
    "<s>[INST] special tokens inside [/INST] answer</s>",
    "<|im_start|>user\nWhat is TDS?<|im_end|>\n<|im_start|>assistant\n",
    "Unicode: caf\u00e9, \u00fcber, \u4f60\u597d, emoji \U0001F642!",
    "numbers 12345 and symbols #$%&*()",
]

CONVERSATIONS = [
    [{"role": "user", "content": "What are the names of some famous actors?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Why is the sky blue?  "}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke."}],
]


def topk_goldens(model, ids, start, k=20):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    positions = []
    for t in range(start, len(ids)):
        row = logp[t - 1]
        top = torch.topk(row, k)
        positions.append({
            "top_ids": top.indices.tolist(),
            "top_logprobs": [round(x, 7) for x in top.values.tolist()],
            "target_logprob": round(row[ids[t]].item(), 7),
        })
    return {"tokens": ids, "start": start, "positions": positions}


def generation_golden(model, prompt, n):
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
    new = out.sequences[0, len(prompt):].tolist()
    logprobs = [torch.log_softmax(s[0].double(), -1)[t].item() for s, t in zip(out.scores, new)]
    return {"prompt": prompt, "tokens": new, "logprobs": [round(x, 7) for x in logprobs]}


def build(name, spec, toks, seed):
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    cfg_cls = getattr(transformers, spec["cls"])
    cfg = cfg_cls(**spec["config"])
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    perturb(model, seed)
    model.save_pretrained(out, max_shard_size="200KB" if spec.get("shard") else "100MB")
    if "old_rope" in spec:
        # Rewrite the config in the pre-5.x key style (rope_theta / rope_scaling).
        c = json.loads((out / "config.json").read_text())
        c.pop("rope_parameters", None)
        c.update(spec["old_rope"])
        (out / "config.json").write_text(json.dumps(c, indent=2) + "\n")
    tok = with_family_tokens(toks[spec["tokenizer"]], spec)
    if spec["tokenizer"] == "sp":
        tcfg = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True)
    else:
        tcfg = dict(bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tcfg.update(spec.get("tokens", {}))
    tcfg.update(spec.get("template", {}))
    save_tokenizer(tok, out, tcfg)
    if "jinja" in spec:
        (out / "chat_template.jinja").write_text(spec["jinja"])
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [2], "bos_token_id": 1}) + "\n")

    model = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    g = torch.Generator().manual_seed(seed + 1)
    text_ids = tokenizer(TEXTS[0] + ". " + TEXTS[2] + " " + TEXTS[5] + " The answer is 42 because of reasons.")["input_ids"]
    random_ids = torch.randint(0, cfg.vocab_size, (48,), generator=g).tolist()
    prompt = tokenizer(TEXTS[1])["input_ids"][:12]
    sequences = [topk_goldens(model, text_ids, 1), topk_goldens(model, random_ids, 5)]
    if "short_sequence" in spec:
        sequences.append(topk_goldens(model, random_ids[:spec["short_sequence"]], 5))
    goldens = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "parameters": model.num_parameters(),
        "sequences": sequences,
        "generation": generation_golden(model, prompt, 16),
    }
    (out / "goldens.json").write_text(json.dumps(goldens) + "\n")
    return tokenizer


def gemma_style(tok):
    """The metaspace vocabulary the way Gemma's tokenizer.json runs it (as transformers'
    GemmaTokenizer builds it): spaces replaced by U+2581 with no prefix space, split
    after each, decoded without stripping. llama.cpp's converter writes Gemma vocabularies
    with add_space_prefix false, so a Gemma GGUF twin tokenizes like this."""
    data = json.loads(tok.to_str())
    data["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
    data["pre_tokenizer"] = {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False}
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    return Tokenizer.from_str(json.dumps(data))


def with_family_tokens(tok, spec):
    """The shared tokenizer with the family's chat-turn tokens added: special ones (never
    split, skipped when decoding with skip_special_tokens) and plain added ones (Qwen3's
    <think> tags, which decode as text)."""
    if spec.get("gemma_style"):
        tok = gemma_style(tok)
    if not spec.get("specials") and not spec.get("added"):
        return tok
    from tokenizers import AddedToken
    tok = Tokenizer.from_str(tok.to_str())
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec.get("specials", [])])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec.get("added", [])])
    return tok


def tokenizer_goldens(tokenizer, path):
    """AutoTokenizer's results, checked against the tokenizer.json loaded as it is."""
    plain_file = transformers.PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    rows = []
    for text in TEXTS:
        a = tokenizer(text, add_special_tokens=False)["input_ids"]
        b = plain_file(text, add_special_tokens=False)["input_ids"]
        if a != b:
            sys.exit(f"{path}: AutoTokenizer and tokenizer.json disagree on {text!r}: {a} vs {b}")
        with_specials = tokenizer(text)["input_ids"]
        plain = tokenizer(text, add_special_tokens=False)["input_ids"]
        rows.append({"text": text, "ids": with_specials, "ids_plain": plain,
                     "decoded": tokenizer.decode(plain), "decoded_skip": tokenizer.decode(plain, skip_special_tokens=True)})
    return rows


def template_goldens(tokenizer, template=None, **kw):
    rows = []
    for conv in CONVERSATIONS:
        for agp in (True, False):
            try:
                text = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp, chat_template=template, **kw)
                rows.append({"messages": conv, "add_generation_prompt": agp, "rendered": text})
            except Exception as e:  # a template that rejects the conversation
                rows.append({"messages": conv, "add_generation_prompt": agp, "error": str(e)})
    return rows


LLAMA2_DEFAULT_SYSTEM = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe.  "
    "Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. "
    "Please ensure that your responses are socially unbiased and positive in nature.\n\nIf a question does not make "
    "any sense, or is not factually coherent, explain why instead of answering something not correct. If you don't "
    "know the answer to a question, please don't share false information."
)


def llama2_study_goldens():
    """The study's prompt format, written out with plain string formatting (no Jinja)."""
    rows = []
    for query in ["What are the names of some famous actors that started their careers on Broadway?",
                  "Write a haiku about\nnewlines   and  spaces ",
                  "Quote: \"<s>\" and {braces} and {{ jinja }} and {% raw %}"]:
        rendered = "<s>[INST] <<SYS>>\n" + LLAMA2_DEFAULT_SYSTEM + "\n<</SYS>>\n \n " + query + " [/INST] "
        rows.append({"messages": [{"role": "user", "content": query}], "add_generation_prompt": True, "rendered": rendered})
    rows.append({"messages": [{"role": "system", "content": "Short."}, {"role": "user", "content": "Hi"}],
                 "add_generation_prompt": True, "rendered": "<s>[INST] <<SYS>>\nShort.\n<</SYS>>\n \n Hi [/INST] "})
    return rows


def check_gguf_with_transformers():
    """Where transformers can load our GGUF itself (plain Llama, Qwen2), it must agree with the twin."""
    for name in ["llama2", "qwen2"]:
        twin = transformers.AutoModelForCausalLM.from_pretrained(OUT / name, dtype=torch.float32).eval()
        model = transformers.AutoModelForCausalLM.from_pretrained(OUT, gguf_file=f"{name}.gguf", dtype=torch.float32).eval()
        ids = torch.randint(0, 500, (1, 40), generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            a = torch.log_softmax(twin(ids).logits, -1)
            b = torch.log_softmax(model(ids).logits, -1)
        err = (a - b).abs().max().item()
        print(f"transformers reads {name}.gguf like its twin: max |delta log-prob| {err:.2e}", file=sys.stderr)
        if err > 1e-4:
            sys.exit(f"{name}.gguf disagrees with its safetensors twin in transformers ({err})")


ZERO_SHOT = "# Query: \n ```{query}``` \n\n \n# Answer: \n ```"


def tds_goldens():
    """TDS between the llama3 fixture (aligned, its chat template) and the mistral fixture (base,
    the study's zero-shot template), for fixed answers: ranks, categories and divergences by torch."""
    aligned = transformers.AutoModelForCausalLM.from_pretrained(OUT / "llama3", dtype=torch.float32, attn_implementation="eager").eval()
    base = transformers.AutoModelForCausalLM.from_pretrained(OUT / "mistral", dtype=torch.float32, attn_implementation="eager").eval()
    tok_a = transformers.AutoTokenizer.from_pretrained(OUT / "llama3")
    tok_b = transformers.AutoTokenizer.from_pretrained(OUT / "mistral")
    records = [("q1", "What is the capital of France?", "The capital of France is Paris. It is a large city."),
               ("q2", "Write a haiku about rain.", "Soft rain on the roof\nwhispers to the sleeping town\nmorning comes slowly")]
    out = []
    for rid, query, answer in records:
        a_ctx = tok_a.apply_chat_template([{"role": "user", "content": query}], tokenize=False, add_generation_prompt=True)
        a_ids = tok_a(a_ctx, add_special_tokens=False)["input_ids"]
        if not a_ids or a_ids[0] != tok_a.bos_token_id:
            a_ids = [tok_a.bos_token_id] + a_ids
        b_ids = tok_b(ZERO_SHOT.replace("{query}", query))["input_ids"]
        ans = tok_a(answer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            la = torch.log_softmax(aligned(torch.tensor([a_ids + ans])).logits[0].double(), -1)[len(a_ids) - 1:-1]
            lb = torch.log_softmax(base(torch.tensor([b_ids + ans])).logits[0].double(), -1)[len(b_ids) - 1:-1]
        rows = []
        for t, tokid in enumerate(ans):
            a, b = la[t], lb[t]
            pa, pb = a.exp(), b.exp()
            m = 0.5 * (pa + pb)
            rank = int((b > b[tokid]).sum()) + 1
            rows.append({
                "token_id": tokid, "base_rank": rank, "aligned_rank": int((a > a[tokid]).sum()) + 1,
                "category": "unshifted" if rank <= 1 else "marginal" if rank <= 3 else "shifted",
                "kl_aligned_base": (pa * (a - b)).sum().item(), "kl_base_aligned": (pb * (b - a)).sum().item(),
                "js": (0.5 * (pa * (a - m.log())).sum() + 0.5 * (pb * (b - m.log())).sum()).item(),
                "base_logprob": b[tokid].item(), "aligned_logprob": a[tokid].item(),
            })
        out.append({"id": rid, "query": query, "output_ids": ans, "aligned_context_ids": a_ids, "base_context_ids": b_ids, "positions": rows})
    (OUT / "tds-pair.json").write_text(json.dumps({"transformers": transformers.__version__, "aligned": "llama3", "base": "mistral", "records": out}) + "\n")


# SmolLM2-135M's shape in each added family, with the family's switches at their
# released models' settings (windows and LongRoPE's threshold past the benchmark's length).
BENCH_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                   num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5)
BENCH_FAMILIES = {
    "llama": ("LlamaConfig", dict(tie_word_embeddings=True, rope_theta=100000.0)),
    "qwen3": ("Qwen3Config", dict(head_dim=64, tie_word_embeddings=True, rope_theta=1000000.0)),
    "olmo2": ("Olmo2Config", dict(tie_word_embeddings=False, rope_theta=500000.0)),
    "gemma2": ("Gemma2Config", dict(head_dim=64, query_pre_attn_scalar=64, sliding_window=4096,
                                    attn_logit_softcapping=50.0, final_logit_softcapping=30.0)),
    "phi3": ("Phi3Config", dict(tie_word_embeddings=False, max_position_embeddings=131072, original_max_position_embeddings=4096,
                                rope_parameters=dict(rope_type="longrope", rope_theta=10000.0, original_max_position_embeddings=4096,
                                                     short_factor=[1.0 + i / 32 for i in range(32)],
                                                     long_factor=[1.0 + i for i in range(32)]))),
}


# The size ladder: released models' real shapes (config.json of Qwen/Qwen3-0.6B and
# meta-llama/Llama-3.2-1B), random weights. The tokenizer stays the small test one:
# speed depends on the shapes (the vocabulary is the logits' width), not on it.
BENCH_SIZES = {
    "0.6b": ("Qwen3Config", dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                                 num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                                 rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True)),
    "1b": ("LlamaConfig", dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                               num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
                               rms_norm_eps=1e-5, tie_word_embeddings=True,
                               rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=32.0,
                                                    low_freq_factor=1.0, high_freq_factor=4.0,
                                                    original_max_position_embeddings=8192))),
    # meta-llama/Llama-2-7b-hf's shape: written only as a random F16 GGUF, streamed
    # (write_gguf.write_random), never as a checkpoint (27 GB in f32).
    "7b": ("LlamaConfig", dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                               num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                               rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)),
}


def bench(dest, family="llama", size="135m"):
    dest = Path(dest)
    toks = {"bl": train_byte_level(corpus(), 2000)}
    if size == "135m":
        cls, extra = BENCH_FAMILIES[family]
        cfg = getattr(transformers, cls)(**{**BENCH_SHAPE, **extra})
    else:
        cls, shape = BENCH_SIZES[size]
        cfg = getattr(transformers, cls)(**shape)
    if size == "7b":
        cfg.save_pretrained(dest)  # the shape only: write_gguf.write_random makes the weights
    else:
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(cfg).float()
        model.save_pretrained(dest)
    save_tokenizer(toks["bl"], dest, dict(eos_token="<|im_end|>", chat_template=SMOLLM2_TEMPLATE))
    print(f"wrote {dest}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", metavar="DIR", help="write a SmolLM2-135M-shaped random checkpoint to DIR instead")
    ap.add_argument("--bench-family", default="llama", choices=list(BENCH_FAMILIES),
                    help="with --bench: the architecture of that checkpoint")
    ap.add_argument("--bench-size", default="135m", choices=["135m", *BENCH_SIZES],
                    help="with --bench: 135m (SmolLM2's shape in --bench-family), or a real model's shape")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=list(FIXTURES),
                    help="rebuild only these fixtures, with the tokenizers the committed llama2 (sp) and "
                         "qwen2 (bl) fixtures carry, merging their rows into tokenizers.json and templates.json")
    args = ap.parse_args()
    if args.bench:
        return bench(args.bench, args.bench_family, args.bench_size)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    names = args.only or list(FIXTURES)
    if args.only:
        # The shared tokenizers as trained when every fixture was built (the family ones add to them).
        base = {"sp": "llama2", "bl": "qwen2"}
        toks = {k: Tokenizer.from_file(str(OUT / v / "tokenizer.json")) for k, v in base.items()}
    else:
        texts = corpus()
        toks = {"sp": train_sentencepiece_like(texts, 330), "bl": train_byte_level(texts, 590)}
    OUT.mkdir(exist_ok=True)
    meta = {"transformers": transformers.__version__, "tokenizers": __import__("tokenizers").__version__}
    previous = lambda f: json.loads((OUT / f).read_text())["fixtures"] if args.only else {}
    tokenizers_out, templates_out = previous("tokenizers.json"), previous("templates.json")
    for name in names:
        spec = FIXTURES[name]
        tokenizer = build(name, spec, toks, seed=1000 + list(FIXTURES).index(name))
        tokenizers_out[name] = tokenizer_goldens(tokenizer, OUT / name)
        templates_out[name] = template_goldens(tokenizer)
        print(f"built {name}", file=sys.stderr)
    from write_gguf import write as write_gguf
    for name in names:
        write_gguf(OUT / name, OUT / f"{name}.gguf")
    if "phi3" in names:
        # A Q8_0 twin: the fused projections split while quantized (--dtype q).
        write_gguf(OUT / "phi3", OUT / "phi3.q8_0.gguf", quantize=True)
    if "qwen3" in names:
        qwen3 = transformers.AutoTokenizer.from_pretrained(OUT / "qwen3")
        for switch in (True, False):
            templates_out[f"qwen3:enable_thinking={str(switch).lower()}"] = template_goldens(qwen3, enable_thinking=switch)
    if args.only:
        print("--only: the llama2/qwen2 GGUF check and tds-pair.json are left as they are", file=sys.stderr)
    else:
        check_gguf_with_transformers()
        tds_goldens()
        templates_out["llama2:toolish"] = template_goldens(transformers.AutoTokenizer.from_pretrained(OUT / "llama2"), template="toolish")
        templates_out["builtin:smollm2"] = template_goldens(transformers.AutoTokenizer.from_pretrained(OUT / "qwen2"), template=SMOLLM2_TEMPLATE)
        templates_out["builtin:llama2-study"] = llama2_study_goldens()
    (OUT / "tokenizers.json").write_text(json.dumps({**meta, "fixtures": tokenizers_out}, ensure_ascii=False, indent=1) + "\n")
    (OUT / "templates.json").write_text(json.dumps({**meta, "fixtures": templates_out}, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
