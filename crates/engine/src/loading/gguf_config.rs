//! A GGUF file's metadata read through the architecture registry: which row
//! the file is (llama.cpp's architecture name, and keys some rows need), and
//! the config.json it amounts to. Apart from the reader (`gguf.rs`), so that
//! the reader needs no registry and the registry only the reader's types.

use serde_json::json;

use crate::error::{EngineError, Result};
use crate::loading::gguf::{GgufFile, GgufSpec};

impl GgufFile {
    /// The registry row of this file's architecture (and its model_type).
    pub(crate) fn spec(&self) -> Result<(&'static str, &'static GgufSpec)> {
        let arch = self.architecture()?;
        crate::models::gguf_spec(&arch, |key| self.get(&format!("{arch}.{key}")).is_some())
            .ok_or_else(|| EngineError::UnsupportedArchitecture {
                path: self.path.clone(),
                found: format!("{arch} (general.architecture)"),
                supported: format!("{} (GGUF)", crate::models::gguf_names()),
            })
    }

    /// A Hugging Face style config.json equivalent for the file's architecture,
    /// parsed afterwards by the architecture's own config code.
    pub fn hf_config(&self) -> Result<serde_json::Value> {
        let arch = self.architecture()?;
        let k = |name: &str| format!("{arch}.{name}");
        let (model_type, spec) = self.spec()?;
        let heads = self.u64(&k("attention.head_count"))?;
        let hidden = self.u64(&k("embedding_length"))?;
        let vocab = match self.opt_u64(&k("vocab_size"))? {
            Some(v) => v,
            None => self
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok())
                .map(|v| v.len() as u64)
                .ok_or_else(|| {
                    self.error(
                        "tokenizer.ggml.tokens",
                        "missing; cannot tell the vocabulary size",
                    )
                })?,
        };
        let mut c = json!({
            "model_type": model_type,
            "hidden_size": hidden,
            "intermediate_size": self.u64(&k("feed_forward_length"))?,
            "num_hidden_layers": self.u64(&k("block_count"))?,
            "num_attention_heads": heads,
            "num_key_value_heads": self.opt_u64(&k("attention.head_count_kv"))?.unwrap_or(heads),
            "head_dim": self.opt_u64(&k("attention.key_length"))?.unwrap_or(hidden / heads.max(1)),
            "max_position_embeddings": self.opt_u64(&k("context_length"))?.unwrap_or(2048),
            "rms_norm_eps": self.opt_f64(&k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-6),
            "vocab_size": vocab,
            // llama.cpp writes the output projection only when it differs from the embedding
            "tie_word_embeddings": !self.has_tensor("output.weight"),
            "bos_token_id": self.opt_u64("tokenizer.ggml.bos_token_id")?,
            "eos_token_id": self.opt_u64("tokenizer.ggml.eos_token_id")?,
            "attention_bias": self.has_tensor("blk.0.attn_q.bias"),
        });
        let theta = self.opt_f64(&k("rope.freq_base"))?;
        let scaling = match self.opt_string(&k("rope.scaling.type")).as_deref() {
            None | Some("none") => None,
            Some("linear") => Some(
                json!({"rope_type": "linear", "factor": self.opt_f64(&k("rope.scaling.factor"))?.unwrap_or(1.0)}),
            ),
            Some(other) => {
                return Err(self.error(
                    &k("rope.scaling.type"),
                    format!("unsupported rope scaling `{other}`; supported: none, linear"),
                ))
            }
        };
        c["rope_theta"] = json!(theta.unwrap_or(spec.default_rope_theta));
        c["rope_scaling"] = json!(scaling);
        if let Some(w) = self.opt_u64(&k("attention.sliding_window"))? {
            c["sliding_window"] = json!(w);
        }
        if let Some(extras) = spec.config {
            extras(self, &mut c)?;
        }
        Ok(c)
    }
}
