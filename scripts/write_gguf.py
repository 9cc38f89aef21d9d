"""Writes a tiny safetensors fixture as an F32 GGUF file the way llama.cpp's
converter would: llama.cpp tensor names and metadata keys (the gguf package's
constants; for the architectures added later, its per-architecture tensor name
map), Llama's Q/K row permutation, Gemma's norms stored as 1 + w, Llama 3 rope
scaling as a `rope_freqs` tensor, Phi-3's fused projections kept fused and its
LongRoPE factors as `rope_factors_short` / `rope_factors_long`. Used by
make_fixtures.py."""
import json
import math
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import load_file

ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "gemma3_text": "gemma3",
        "qwen3": "qwen3", "olmo2": "olmo2", "gemma2": "gemma2", "phi3": "phi3"}
# Architectures named through the gguf package's tensor name map (as the converter does).
MAPPED = {"qwen3": gguf.MODEL_ARCH.QWEN3, "olmo2": gguf.MODEL_ARCH.OLMO2,
          "gemma2": gguf.MODEL_ARCH.GEMMA2, "phi3": gguf.MODEL_ARCH.PHI3}
GEMMA_OFFSET_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                      "post_feedforward_layernorm", "q_norm", "k_norm")


def permute(w, heads):
    """llama.cpp's convert_hf_to_gguf permute (interleaves each head's rotary halves)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tensor_name(hf, gemma):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    layer, rest, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    names = {
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "post_attention_norm" if gemma else "ffn_norm",
        "pre_feedforward_layernorm": "ffn_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
        "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }
    return f"blk.{layer}.{names[rest]}.{kind}"


def add_weight(w, name, t, quantize):
    """A tensor as F32, or as Q8_0 (what `convert_hf_to_gguf --outtype q8_0` does to
    2-D weights; norms and other 1-D tensors stay F32)."""
    data = t.numpy().astype(np.float32)
    if quantize and data.ndim == 2 and data.shape[1] % 32 == 0:
        q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        w.add_tensor(name, data)


def add_hyperparameters(w, cfg):
    """The architecture's metadata keys from a config.json; returns the rope settings
    (the rope_freqs tensor of Llama 3 scaling and Phi-3's factors are tensors: see write)."""
    arch = ARCH[cfg["model_type"]]
    gemma = arch in ("gemma3", "gemma2")
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    rope = cfg.get("rope_parameters") or {"rope_theta": cfg.get("rope_theta", 10000.0), **(cfg.get("rope_scaling") or {})}
    if arch == "gemma2":
        # What Gemma2Model.set_gguf_parameters writes: no rope base (llama.cpp's 10000), the caps, the window.
        w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
        w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
        w.add_sliding_window(cfg["sliding_window"])
        # llama.cpp takes the query scale from the layer count (hidden/heads for the 46-layer 27B,
        # head_dim otherwise); a scalar it would not infer is written as attention.scale.
        inferred = cfg["hidden_size"] // heads if cfg["num_hidden_layers"] == 46 else head_dim
        if cfg["query_pre_attn_scalar"] != inferred:
            w.add_attention_scale(1.0 / math.sqrt(cfg["query_pre_attn_scalar"]))
    elif arch == "phi3":
        # What Phi3MiniModel writes: the original context, a 0 window for none, LongRoPE's attention
        # factor from the ratio of the contexts, and the factors as tensors (below).
        original = rope["original_max_position_embeddings"]
        w.add_rope_freq_base(rope["rope_theta"])
        w.add_rope_scaling_orig_ctx_len(original)
        w.add_rope_dimension_count(head_dim)
        w.add_sliding_window(cfg.get("sliding_window") or 0)
        scale = cfg["max_position_embeddings"] / original
        if rope.get("long_factor"):
            w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0)
            w.add_tensor("rope_factors_long.weight", np.array(rope["long_factor"], dtype=np.float32))
            w.add_tensor("rope_factors_short.weight", np.array(rope["short_factor"], dtype=np.float32))
    elif arch in ("qwen3", "olmo2"):
        w.add_rope_freq_base(rope["rope_theta"])
    elif gemma:
        full, sliding = rope["full_attention"], rope["sliding_attention"]
        w.add_rope_freq_base(full["rope_theta"])
        w.add_rope_freq_base_swa(sliding["rope_theta"])
        if full.get("rope_type") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(full["factor"])
        w.add_sliding_window(cfg["sliding_window"])
        w.add_sliding_window_pattern([t == "sliding_attention" for t in cfg["layer_types"]])
        w.add_attention_scale(1.0 / math.sqrt(cfg["query_pre_attn_scalar"]))
        if cfg.get("final_logit_softcapping"):
            w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
    else:
        w.add_rope_freq_base(rope["rope_theta"])
        if cfg["model_type"] == "mistral" and cfg.get("sliding_window"):
            w.add_sliding_window(cfg["sliding_window"])
    return rope


def write(src: Path, dest: Path, quantize: bool = False, pad_vocab: bool = False):
    cfg = json.loads((src / "config.json").read_text())
    arch = ARCH[cfg["model_type"]]
    gemma = arch in ("gemma3", "gemma2")
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    w = gguf.GGUFWriter(str(dest), arch)
    name_map = gguf.get_tensor_name_map(MAPPED[arch], cfg["num_hidden_layers"]) if arch in MAPPED else None
    rope = add_hyperparameters(w, cfg)
    tensors = {}
    for path in sorted(src.glob("*.safetensors")):
        tensors.update(load_file(path))
    if rope.get("rope_type") == "llama3":
        dim = head_dim
        inv = 1.0 / (rope["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        factor, low, high, old = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"], rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) * ~(wavelen > old / low)
        scaled = torch.where(medium, smoothed, scaled)
        w.add_tensor("rope_freqs.weight", (inv / scaled).numpy().astype(np.float32))
    for name, t in tensors.items():
        t = t.float()
        if arch == "llama" and name.endswith("self_attn.q_proj.weight"):
            t = permute(t, heads)
        if arch == "llama" and name.endswith("self_attn.k_proj.weight"):
            t = permute(t, kv)
        if gemma and (name == "model.norm.weight" or any(f".{n}." in name for n in GEMMA_OFFSET_NORMS)):
            t = t + 1.0
        if name_map is not None:
            if arch == "gemma2" and name == "lm_head.weight":
                continue  # the converter skips it: Gemma 2 always ties its output to the embedding
            mapped = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
            if mapped is None:
                raise KeyError(f"{arch}: no llama.cpp name for {name}")
            add_weight(w, mapped, t, quantize)
            continue
        add_weight(w, tensor_name(name, gemma), t, quantize)
    add_vocab(w, src, cfg, pad_vocab)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def add_vocab(w, src: Path, cfg, pad_vocab: bool):
    """The tokenizer (and chat template) of a checkpoint folder as GGUF metadata."""
    tok = json.loads((src / "tokenizer.json").read_text())
    tcfg = json.loads((src / "tokenizer_config.json").read_text())
    arch = ARCH[cfg["model_type"]]
    # The model's vocabulary, then tokens added past it (a family's chat-turn tokens).
    by_id = {i: t for t, i in tok["model"]["vocab"].items()}
    by_id.update({a["id"]: a["content"] for a in tok["added_tokens"]})
    tokens = [by_id[i] for i in range(len(by_id))]
    # With pad_vocab, rows past the tokenizer (a fixture's or a benchmark checkpoint's small
    # tokenizer under a larger embedding) get placeholders, as convert_hf_to_gguf pads them:
    # llama.cpp takes the vocabulary size from this list and checks the embedding against it.
    pads = {f"[PAD{i}]" for i in range(len(tokens), cfg["vocab_size"] if pad_vocab else 0)}
    tokens += sorted(pads, key=lambda t: int(t[4:-1]))
    specials = {a["content"] for a in tok["added_tokens"] if a["special"]}
    user = {a["content"] for a in tok["added_tokens"] if not a["special"]}
    kind = lambda t: (gguf.TokenType.UNUSED if t in pads else gguf.TokenType.CONTROL if t in specials else gguf.TokenType.USER_DEFINED if t in user
                      else gguf.TokenType.BYTE if t.startswith("<0x") else gguf.TokenType.NORMAL)
    if tok["model"].get("byte_fallback"):
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores([-float(i) for i in range(len(tokens))])
        w.add_token_types([kind(t) for t in tokens])
    else:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2")
        w.add_token_list(tokens)
        w.add_token_types([gguf.TokenType.NORMAL if kind(t) == gguf.TokenType.BYTE else kind(t) for t in tokens])
        w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]])
    ids = {t: i for i, t in enumerate(tokens)}
    if tcfg.get("bos_token") in ids:
        w.add_bos_token_id(ids[tcfg["bos_token"]])
    if tcfg.get("eos_token") in ids:
        w.add_eos_token_id(ids[tcfg["eos_token"]])
    w.add_add_bos_token(bool(tcfg.get("add_bos_token", False)))
    if arch == "gemma2":
        w.add_add_space_prefix(False)  # as Gemma2Model.set_vocab writes it
    template = tcfg.get("chat_template")
    if isinstance(template, list):
        template = next(t["template"] for t in template if t["name"] == "default")
    if (src / "chat_template.jinja").exists():
        template = (src / "chat_template.jinja").read_text()
    if template:
        w.add_chat_template(template)


def write_random(src: Path, dest: Path, seed: int = 0):
    """A Llama-family checkpoint's shape (src: config.json and tokenizer files, no
    weights) as an F16 GGUF of random weights, generated and written one tensor at a
    time: a 7B model never exists whole in memory (27 GB in f32; the file is 13.5 GB).
    Weights are N(0, 0.02) as transformers initialises them, norms 1. Only for speed:
    no checkpoint exists to compare with, so no Q/K permutation matters."""
    cfg = json.loads((src / "config.json").read_text())
    if ARCH[cfg["model_type"]] != "llama" or cfg.get("rope_parameters", {}).get("rope_type") == "llama3":
        raise ValueError(f"{src}: write_random writes plain Llama shapes only")
    hidden, inter, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or hidden // heads
    shapes = [("token_embd.weight", (vocab, hidden)), ("output_norm.weight", (hidden,))]
    if not cfg.get("tie_word_embeddings", False):
        shapes.append(("output.weight", (vocab, hidden)))
    for i in range(cfg["num_hidden_layers"]):
        shapes += [(f"blk.{i}.{n}.weight", s) for n, s in (
            ("attn_norm", (hidden,)), ("attn_q", (heads * head_dim, hidden)), ("attn_k", (kv * head_dim, hidden)),
            ("attn_v", (kv * head_dim, hidden)), ("attn_output", (hidden, heads * head_dim)), ("ffn_norm", (hidden,)),
            ("ffn_gate", (inter, hidden)), ("ffn_up", (inter, hidden)), ("ffn_down", (hidden, inter)))]
    w = gguf.GGUFWriter(str(dest), "llama")
    add_hyperparameters(w, cfg)
    add_vocab(w, src, cfg, pad_vocab=True)
    # Norms stay F32 as the converter keeps 1-D tensors; matrices are F16.
    dtype = lambda s: np.float32 if len(s) == 1 else np.float16
    for name, shape in shapes:
        w.add_tensor_info(name, shape, np.dtype(dtype(shape)), int(np.prod(shape)) * np.dtype(dtype(shape)).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for n, (name, shape) in enumerate(shapes):
        if len(shape) == 1:
            w.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            # Row blocks bound the f32 scratch to ~0.5 GB whatever the tensor.
            out = np.empty(shape, dtype=np.float16)
            step = max(1, (1 << 27) // shape[1])
            for r in range(0, shape[0], step):
                block = rng.standard_normal((min(step, shape[0] - r), shape[1]), dtype=np.float32)
                block *= 0.02
                out[r:r + step] = block
            w.write_tensor_data(out)
        print(f"\r{n + 1}/{len(shapes)} tensors", end="", flush=True)
    print()
    w.close()
