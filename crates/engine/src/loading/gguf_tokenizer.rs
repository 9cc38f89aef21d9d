//! Tokenizers rebuilt from GGUF metadata the way transformers rebuilds them
//! (integrations/gguf/gguf_tokenizer_mapping.py), so token ids agree:
//! `gpt2` (byte-level BPE with merges, split regex chosen by `tokenizer.ggml.pre`)
//! and `llama` (SentencePiece-style BPE with byte fallback; merges recovered
//! from scores, or for Gemma from the vocabulary order).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::error::{EngineError, Result};
use crate::loading::gguf::GgufFile;

const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn split_regex(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "megrez" => QWEN2_SPLIT,
        "tekken" => TEKKEN_SPLIT,
        "gpt-4o" | "llama4" | "kanana2" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

/// GPT-2's byte-to-character table.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('?')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('?')
        };
    }
    table
}

/// Python's `str.isspace`, which also counts U+001C..U+001F.
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// transformers' `generate_merges`: every split of every token into two known
/// tokens, ordered by the token's score (descending, stable), then by piece lengths.
fn generate_merges(
    tokens: &[String],
    vocab: &HashMap<&str, usize>,
    scores: &[(usize, f64)],
) -> Vec<(String, String)> {
    let mut merges: Vec<(&str, &str, f64)> = Vec::new();
    for &(index, score) in scores {
        let merge = tokens[index].as_str();
        let mut local = Vec::new();
        for (split, _) in merge.char_indices().skip(1) {
            let (l, r) = merge.split_at(split);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                local.push((li, ri, l, r));
            }
        }
        local.sort_by_key(|&(li, ri, _, _)| (li, ri));
        merges.extend(local.into_iter().map(|(_, _, l, r)| (l, r, score)));
    }
    let key = |m: &(&str, &str, f64)| (m.2, m.0.chars().count(), m.1.chars().count());
    merges.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.partial_cmp(&ka.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(kb.1.cmp(&ka.1))
            .then(kb.2.cmp(&ka.2))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

/// The order in which a Python dict built from `pairs` iterates: first occurrence, last value.
fn dict_order(keys: &[String], values: impl Fn(usize) -> f64) -> Vec<(usize, f64)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut order: Vec<(usize, f64)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match seen.get(k.as_str()) {
            Some(&slot) => order[slot].1 = values(i),
            None => {
                seen.insert(k, order.len());
                order.push((i, values(i)));
            }
        }
    }
    order
}

fn vocab_map(tokens: &[String]) -> HashMap<&str, usize> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect()
}

/// Builds the tokenizer and a tokenizer_config.json equivalent for a GGUF file.
pub fn build(gguf: &GgufFile) -> Result<(tokenizers::Tokenizer, Value)> {
    let kind = gguf.string("tokenizer.ggml.model")?;
    let arch = gguf.architecture()?;
    let tokens = gguf.strings("tokenizer.ggml.tokens")?;
    let types: Vec<i64> = gguf
        .numbers("tokenizer.ggml.token_type")?
        .unwrap_or_default()
        .into_iter()
        .map(|x| x as i64)
        .collect();
    let token_at = |key: &str| -> Result<Option<String>> {
        Ok(gguf
            .opt_u64(key)?
            .and_then(|id| tokens.get(id as usize).cloned()))
    };
    let (model, normalizer, pre_tokenizer, decoder, spelled): (Value, Value, Value, Value, Vec<String>) = match kind.as_str() {
        "gpt2" => {
            let table = bytes_to_unicode();
            let alphabet: std::collections::HashSet<char> = table.iter().copied().collect();
            let spelled: Vec<String> = tokens
                .iter()
                .map(|t| if t.chars().all(|c| alphabet.contains(&c)) { t.clone() } else { t.bytes().map(|b| table[b as usize]).collect() })
                .collect();
            let merges: Vec<Value> = gguf
                .strings("tokenizer.ggml.merges")?
                .iter()
                .map(|m| json!(m.split(' ').collect::<Vec<_>>()))
                .collect();
            let vocab: serde_json::Map<String, Value> = spelled.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
            let pre = gguf.opt_string("tokenizer.ggml.pre").unwrap_or_default();
            let pre_tokenizer = match split_regex(&pre) {
                Some(regex) => json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}),
                None => json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}),
            };
            let model = json!({"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges});
            let decoder = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
            (model, Value::Null, pre_tokenizer, decoder, spelled)
        }
        "llama" => {
            let gemma = arch.starts_with("gemma");
            let spelled: Vec<String> = if gemma {
                // Gemma stores runs of spaces as real spaces; its tokenizer looks them up as U+2581.
                tokens.iter().map(|t| if t.contains(' ') && t.chars().all(python_space) { "\u{2581}".repeat(t.chars().count()) } else { t.clone() }).collect()
            } else {
                tokens.clone()
            };
            let vocab_index = vocab_map(&spelled);
            let order = if gemma {
                dict_order(&spelled, |i| -(i as f64))
            } else {
                let scores = gguf.numbers("tokenizer.ggml.scores")?.ok_or_else(|| EngineError::Config {
                    path: gguf.path.clone(),
                    field: "tokenizer.ggml.scores".into(),
                    message: "missing; a llama (SentencePiece) vocabulary needs scores to recover its merges".into(),
                })?;
                dict_order(&spelled, |i| scores.get(i).copied().unwrap_or(0.0))
            };
            let merges: Vec<Value> = generate_merges(&spelled, &vocab_index, &order).into_iter().map(|(l, r)| json!([l, r])).collect();
            let vocab: serde_json::Map<String, Value> = spelled.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
            let mut model = json!({"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": true, "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges});
            if gemma {
                model["unk_token"] = json!("<unk>");
                let normalizer = json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
                let pre = json!({"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false});
                let decoder = json!({"type": "Sequence", "decoders": [
                    {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]});
                (model, normalizer, pre, decoder, spelled)
            } else {
                let pre = json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false});
                let decoder = json!({"type": "Sequence", "decoders": [
                    {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
                    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]});
                (model, Value::Null, pre, decoder, spelled)
            }
        }
        other => {
            return Err(EngineError::Tokenizer {
                path: gguf.path.clone(),
                message: format!("tokenizer model `{other}` (tokenizer.ggml.model) is not supported; supported: gpt2, llama"),
            })
        }
    };
    let byte_level = kind == "gpt2";
    let alphabet: std::collections::HashSet<char> = bytes_to_unicode().into_iter().collect();
    let vocab_set: std::collections::HashSet<&str> = spelled.iter().map(String::as_str).collect();
    let mut added = Vec::new();
    for (id, (token, &t)) in tokens.iter().zip(types.iter()).enumerate() {
        let special = t == CONTROL && (!byte_level || token.chars().all(|c| alphabet.contains(&c)));
        let user = t == USER_DEFINED && vocab_set.contains(token.as_str());
        if special || user {
            added.push(json!({"id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": special}));
        }
    }
    let spec = json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer, "post_processor": null, "decoder": decoder, "model": model});
    let tokenizer = tokenizers::Tokenizer::from_bytes(serde_json::to_vec(&spec).map_err(|e| {
        EngineError::Tokenizer {
            path: gguf.path.clone(),
            message: e.to_string(),
        }
    })?)
    .map_err(|e| EngineError::Tokenizer {
        path: gguf.path.clone(),
        message: format!("cannot build the tokenizer from GGUF metadata: {e}"),
    })?;
    let add_bos = gguf
        .opt_bool("tokenizer.ggml.add_bos_token")
        .unwrap_or(kind == "llama");
    let config = json!({
        "bos_token": token_at("tokenizer.ggml.bos_token_id")?,
        "eos_token": token_at("tokenizer.ggml.eos_token_id")?,
        "unk_token": token_at("tokenizer.ggml.unknown_token_id")?,
        "add_bos_token": add_bos,
        "chat_template": gguf.opt_string("tokenizer.chat_template"),
    });
    Ok((tokenizer, config))
}
