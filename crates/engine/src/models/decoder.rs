//! The decoder-only transformer shared by every supported architecture, run on
//! whole sequences: unlike a generation-only forward it returns the hidden
//! state of every position, so one pass scores a whole answer.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{RmsNorm, VarBuilder};

use crate::config::{Activation, LayerAttention, ModelConfig, NormPlacement, QkNorm};
use crate::error::{EngineError, Result};
use crate::kernels::cpu_ops::{CausalSoftmax, GatedActivation};
use crate::models::kv_cache::LayerCache;
pub use crate::models::kv_cache::{KvCache, Segment};
pub use crate::models::projections::Activations;
use crate::models::projections::{
    compute_dtype, linear, linear_part, packs, rms_norm, Linear, Weights,
};
pub use crate::models::projections::{QuantizedWeights, RowSource};
use crate::models::quantized_linear::{QuantizedLinear, TokenEmbedding, DECODE_ROWS, PASS_ROWS};
use crate::models::rope;

/// Upper bound on one attention score block, so long sequences never hold
/// `[heads, T, T]` scores at once.
const ATTENTION_BLOCK_BYTES: usize = 64 << 20;

/// At most this many query positions per attention block.
const QUERY_BLOCK: usize = 256;

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    /// The q/k norms span the whole projection (OLMo 2), not one head.
    whole_qk_norm: bool,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
    softcap: Option<f64>,
}

impl Attention {
    fn load(cfg: &ModelConfig, vb: &Weights) -> Result<Self> {
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let (q_rows, kv_rows) = (cfg.num_heads * d, cfg.num_kv_heads * d);
        let [q, k, v] = if cfg.switches.fused_qkv {
            // Phi-3's qkv_proj: the query rows, then the key rows, then the value rows.
            let total = q_rows + 2 * kv_rows;
            let part = |rows| linear_part(vb, "qkv_proj", h, (total, rows), cfg.qkv_bias);
            [
                part(0..q_rows)?,
                part(q_rows..q_rows + kv_rows)?,
                part(q_rows + kv_rows..total)?,
            ]
        } else {
            [
                linear(vb, "q_proj", h, q_rows, cfg.qkv_bias)?,
                linear(vb, "k_proj", h, kv_rows, cfg.qkv_bias)?,
                linear(vb, "v_proj", h, kv_rows, cfg.qkv_bias)?,
            ]
        };
        let (q_norm, k_norm) = match cfg.switches.qk_norm {
            QkNorm::None => (None, None),
            QkNorm::PerHead => (
                Some(rms_norm(vb, "q_norm", d, cfg)?),
                Some(rms_norm(vb, "k_norm", d, cfg)?),
            ),
            QkNorm::Whole => (
                Some(rms_norm(vb, "q_norm", q_rows, cfg)?),
                Some(rms_norm(vb, "k_norm", kv_rows, cfg)?),
            ),
        };
        Ok(Self {
            q,
            k,
            v,
            o: linear(vb, "o_proj", q_rows, h, cfg.o_bias)?,
            q_norm,
            k_norm,
            whole_qk_norm: cfg.switches.qk_norm == QkNorm::Whole,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: d,
            scale: 1.0
                / cfg
                    .switches
                    .query_pre_attn_scalar
                    .unwrap_or(d as f64)
                    .sqrt(),
            softcap: cfg.switches.attn_logit_softcapping,
        })
    }

    /// `x`: `[N, hidden]`, the rows of one or more sequences back to back
    /// (`segments`, in order); returns `[N, hidden]`. Projections and norms run
    /// on all rows at once (one pass over the weights for every sequence);
    /// attention runs per sequence, against its own cache.
    fn forward(
        &self,
        x: &Tensor,
        segments: &mut [AttnSegment<'_>],
        (cos, sin): (&Tensor, &Tensor),
        window: Option<usize>,
        masks: &MaskCache,
        max_rows: usize,
    ) -> Result<Tensor> {
        let n = x.dim(0)?;
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let [q, k, v] = Linear::forward_many([&self.q, &self.k, &self.v], x, max_rows)?;
        // A norm over the whole projection runs before the heads are split, a per-head one after.
        let (q, k) = if self.whole_qk_norm {
            (apply(&self.q_norm, q)?, apply(&self.k_norm, k)?)
        } else {
            (q, k)
        };
        let q = q.reshape((1, n, nh, hd))?;
        let q = match &self.q_norm {
            Some(norm) if !self.whole_qk_norm => norm.forward(&q)?,
            _ => q,
        };
        let q = candle_nn::rotary_emb::rope_thd(&q, cos, sin)?;
        let k = k.reshape((1, n, nkv, hd))?;
        let k = match &self.k_norm {
            Some(norm) if !self.whole_qk_norm => norm.forward(&k)?,
            _ => k,
        };
        let k = candle_nn::rotary_emb::rope_thd(&k, cos, sin)?;
        // On the CPU in f32 the fused kernels apply scale, soft-cap, mask and softmax in one pass.
        let fused = x.device().is_cpu() && q.dtype() == DType::F32;
        let decoding = segments.iter().all(|s| s.len == 1 && s.cache.is_some());
        let out = if fused && decoding {
            self.decode(&q, &k, &v, segments, window)?
        } else {
            let mut outputs = Vec::with_capacity(segments.len());
            let mut row = 0;
            for segment in segments.iter_mut() {
                let t = segment.len;
                outputs.push(self.attend(
                    &q.narrow(1, row, t)?,
                    &k.narrow(1, row, t)?,
                    &v.narrow(0, row, t)?,
                    segment,
                    window,
                    masks,
                    fused,
                )?);
                row += t;
            }
            if outputs.len() == 1 {
                outputs.pop().unwrap_or_else(|| unreachable!())
            } else {
                Tensor::cat(&outputs, 0)?
            }
        };
        Ok(self.o.forward(&out, max_rows)?)
    }

    /// The newest position of every sequence (one row each) against its cache,
    /// all sequences in one parallel kernel; returns `[N, heads * head_dim]`.
    fn decode(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        segments: &mut [AttnSegment<'_>],
        window: Option<usize>,
    ) -> Result<Tensor> {
        let (nkv, hd) = (self.num_kv_heads, self.head_dim);
        let n = segments.len();
        let k = k.reshape((n, nkv, hd))?;
        let v = v.reshape((n, nkv, hd))?;
        let mut caches = Vec::with_capacity(n);
        for (b, segment) in segments.iter_mut().enumerate() {
            let slot = segment.cache.as_deref_mut().ok_or_else(|| {
                EngineError::Input("decoding needs every sequence's cache".into())
            })?;
            let kb = k.narrow(0, b, 1)?.transpose(0, 1)?.contiguous()?;
            let vb = v.narrow(0, b, 1)?.transpose(0, 1)?.contiguous()?;
            LayerCache::append(slot, segment.start, segment.reserve, &kb, &vb)?;
            let cache = slot
                .as_ref()
                .ok_or_else(|| EngineError::Input("the key/value cache was not filled".into()))?;
            caches.push((cache.k.clone(), cache.v.clone(), segment.start + 1));
        }
        let q = q
            .reshape((n, nkv, self.num_heads / nkv, hd))?
            .contiguous()?;
        Ok(crate::kernels::cpu_ops::decode_attention(
            &q,
            &caches,
            window,
            (self.scale as f32, self.softcap.map(|c| c as f32)),
        )?)
    }

    /// One sequence's attention: q `[1, t, heads, hd]` and k `[1, t, kv heads, hd]`
    /// after rope, v `[t, kv heads * hd]`; returns `[t, heads * hd]`.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        segment: &mut AttnSegment<'_>,
        window: Option<usize>,
        masks: &MaskCache,
        fused: bool,
    ) -> Result<Tensor> {
        let t = segment.len;
        let start = segment.start;
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let rep = nh / nkv;
        // Group query heads by their shared kv head, rows ordered (position, head in group),
        // so grouped-query attention needs no repeated keys and a block of positions is a
        // contiguous block of rows.
        let q = q
            .reshape((t, nkv, rep, hd))?
            .transpose(0, 1)?
            .contiguous()?;
        let q = if fused { q } else { (q * self.scale)? }.reshape((nkv, t * rep, hd))?;
        let k = k.reshape((t, nkv, hd))?.transpose(0, 1)?.contiguous()?;
        let v = v.reshape((t, nkv, hd))?.transpose(0, 1)?.contiguous()?;
        let (k, v, key_start) = match segment.cache.as_deref_mut() {
            Some(slot) => {
                LayerCache::append(slot, start, segment.reserve, &k, &v)?;
                let cache = slot.as_ref().ok_or_else(|| {
                    EngineError::Input("the key/value cache was not filled".into())
                })?;
                let keys = start + t;
                (
                    cache.k.narrow(1, 0, keys)?.contiguous()?,
                    cache.v.narrow(1, 0, keys)?.contiguous()?,
                    0,
                )
            }
            None => (k, v, start),
        };
        let s = k.dim(1)?;
        // Query blocks bound the score memory; causally, a block needs no key after its last query.
        let block = (ATTENTION_BLOCK_BYTES / (nh * s * 4).max(1)).clamp(1, t.min(QUERY_BLOCK));
        let mut outputs = Vec::with_capacity(t.div_ceil(block));
        for b0 in (0..t).step_by(block) {
            let bt = block.min(t - b0);
            let keys = (start + b0 + bt).saturating_sub(key_start).clamp(1, s);
            let qb = q.narrow(1, b0 * rep, bt * rep)?;
            let (kb, vb) = (k.narrow(1, 0, keys)?, v.narrow(1, 0, keys)?);
            let scores = qb.matmul(&kb.t()?)?.to_dtype(DType::F32)?;
            if fused {
                let probs = scores.apply_op1_no_bwd(&CausalSoftmax {
                    q0: start + b0,
                    rep,
                    key_start,
                    window,
                    scale: self.scale as f32,
                    softcap: self.softcap.map(|c| c as f32),
                })?;
                outputs.push(probs.matmul(&vb)?);
                continue;
            }
            let scores = match self.softcap {
                Some(cap) => ((scores / cap)?.tanh()? * cap)?,
                None => scores,
            };
            let mask = masks.get(
                MaskKey {
                    q0: start + b0,
                    bt,
                    rep,
                    key_start,
                    s: keys,
                    window,
                },
                q.device(),
            )?;
            let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?;
            outputs.push(probs.to_dtype(v.dtype())?.matmul(&vb)?);
        }
        let out = if outputs.len() == 1 {
            outputs.pop().unwrap_or_else(|| unreachable!())
        } else {
            Tensor::cat(&outputs, 1)?
        };
        Ok(out
            .reshape((nkv, t, rep, hd))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((t, nh * hd))?)
    }
}

/// One rope configuration's inverse frequencies; LongRoPE has a second set
/// for sequences past its original context (`long`, with that context's length).
#[derive(PartialEq)]
struct RopeFrequencies {
    short: Vec<f32>,
    long: Option<(Vec<f32>, usize)>,
    /// cos and sin are multiplied by this (LongRoPE's attention factor).
    scale: f32,
}

impl RopeFrequencies {
    fn new(rope: &crate::config::RopeConfig, head_dim: usize) -> Self {
        Self {
            short: rope::inverse_frequencies(rope, head_dim),
            long: rope::long_inverse_frequencies(rope, head_dim),
            scale: rope::attention_factor(rope),
        }
    }

    fn for_sequence(&self, long: bool) -> &[f32] {
        match &self.long {
            Some((frequencies, _)) if long => frequencies,
            _ => &self.short,
        }
    }
}

/// One sequence's rows in an attention call: positions `start..start + len`,
/// appended to its layer cache when it has one.
struct AttnSegment<'c> {
    start: usize,
    len: usize,
    reserve: usize,
    cache: Option<&'c mut Option<LayerCache>>,
}

/// Which additive attention mask: `[bt * rep, s]` for queries at positions
/// `q0..q0 + bt` (each repeated `rep` times) against keys at `key_start..key_start + s`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct MaskKey {
    q0: usize,
    bt: usize,
    rep: usize,
    key_start: usize,
    s: usize,
    window: Option<usize>,
}

/// Masks built once per forward pass and shared by every layer that needs them.
#[derive(Default)]
struct MaskCache(std::cell::RefCell<std::collections::HashMap<MaskKey, Tensor>>);

impl MaskCache {
    fn get(&self, key: MaskKey, device: &Device) -> Result<Tensor> {
        if let Some(mask) = self.0.borrow().get(&key) {
            return Ok(mask.clone());
        }
        let mask = causal_mask(key, device)?;
        self.0.borrow_mut().insert(key, mask.clone());
        Ok(mask)
    }
}

/// 0 where the query may see the key, -inf elsewhere. Sliding windows follow
/// transformers: key j is visible to query i when i - window < j <= i.
fn causal_mask(key: MaskKey, device: &Device) -> Result<Tensor> {
    let MaskKey {
        q0,
        bt,
        rep,
        key_start,
        s,
        window,
    } = key;
    let mut mask = vec![0f32; bt * rep * s];
    for i in 0..bt {
        let qpos = q0 + i;
        let lowest = window.map_or(0, |w| (qpos + 1).saturating_sub(w));
        for r in 0..rep {
            let row = &mut mask[(i * rep + r) * s..(i * rep + r + 1) * s];
            for (j, m) in row.iter_mut().enumerate() {
                let kpos = key_start + j;
                if kpos > qpos || kpos < lowest {
                    *m = f32::NEG_INFINITY;
                }
            }
        }
    }
    Ok(Tensor::from_vec(mask, (bt * rep, s), device)?)
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    activation: Activation,
}

impl Mlp {
    fn load(cfg: &ModelConfig, vb: &Weights) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let (gate, up) = if cfg.switches.fused_gate_up {
            // Phi-3's gate_up_proj: the gate rows, then the up rows.
            let part = |rows| linear_part(vb, "gate_up_proj", h, (2 * i, rows), cfg.mlp_bias);
            (part(0..i)?, part(i..2 * i)?)
        } else {
            (
                linear(vb, "gate_proj", h, i, cfg.mlp_bias)?,
                linear(vb, "up_proj", h, i, cfg.mlp_bias)?,
            )
        };
        Ok(Self {
            gate,
            up,
            down: linear(vb, "down_proj", i, h, cfg.mlp_bias)?,
            activation: cfg.activation,
        })
    }

    fn forward(&self, x: &Tensor, max_rows: usize) -> Result<Tensor> {
        let [gate, up] = Linear::forward_many([&self.gate, &self.up], x, max_rows)?;
        if gate.device().is_cpu() && gate.dtype() == DType::F32 {
            let hidden = gate.apply_op2_no_bwd(&up, &GatedActivation(self.activation))?;
            return Ok(self.down.forward(&hidden, max_rows)?);
        }
        let gate = match self.activation {
            Activation::Silu => candle_nn::ops::silu(&gate)?,
            Activation::GeluTanh => gate.gelu()?,
        };
        Ok(self.down.forward(&(gate * up)?, max_rows)?)
    }
}

struct Layer {
    attention: Attention,
    mlp: Mlp,
    /// The norm before attention (every placement but OLMo 2's after-only one).
    input_norm: Option<RmsNorm>,
    /// Gemma's and OLMo 2's norm of the attention output, before the residual add.
    attention_out_norm: Option<RmsNorm>,
    mlp_in_norm: Option<RmsNorm>,
    /// Gemma's and OLMo 2's norm of the MLP output, before the residual add.
    mlp_out_norm: Option<RmsNorm>,
    kind: LayerAttention,
}

fn apply(norm: &Option<RmsNorm>, x: Tensor) -> Result<Tensor> {
    Ok(match norm {
        Some(n) => n.forward(&x)?,
        None => x,
    })
}

pub struct Decoder {
    config: ModelConfig,
    embed: TokenEmbedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope_full: RopeFrequencies,
    rope_sliding: RopeFrequencies,
    device: Device,
    /// The activations' dtype (see `compute_dtype`).
    dtype: DType,
    /// The dense weights' dtype as loaded (f32 for quantized models' others).
    weights_dtype: DType,
    /// What the quantized products take (`q8`: 8-bit activations).
    activations: Activations,
}

impl Decoder {
    /// Builds the decoder from Hugging Face tensor names (`model.layers.N...`).
    pub fn load(
        config: ModelConfig,
        vb: VarBuilder,
        quantized: Option<&QuantizedWeights>,
        rows: Option<&dyn RowSource>,
    ) -> Result<Self> {
        let cfg = &config;
        let root = Weights {
            vb: vb.clone(),
            quantized,
            rows,
            compute: compute_dtype(&vb),
        };
        let model = root.pp("model");
        // A tied output projection is packed once and the embedding looks its
        // rows up there, so the weights are held once.
        let embed = match quantized.and_then(|q| q.get("model.embed_tokens.weight")) {
            Some(q) => TokenEmbedding::Quantized(q.clone()),
            None if cfg.tie_word_embeddings && packs(&vb) => TokenEmbedding::Packed(
                model
                    .pp("embed_tokens")
                    .packed("weight", cfg.vocab_size, cfg.hidden_size)?,
            ),
            None => TokenEmbedding::Dense(candle_nn::embedding(
                cfg.vocab_size,
                cfg.hidden_size,
                model.vb.pp("embed_tokens"),
            )?),
        };
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for (i, kind) in cfg.layers.iter().enumerate() {
            let lvb = model.pp(format!("layers.{i}"));
            let h = cfg.hidden_size;
            let norm = |name: &str| rms_norm(&lvb, name, h, cfg).map(Some);
            // Llama's post_attention_layernorm is the MLP's input norm; Gemma's and
            // OLMo 2's normalise the attention output (Gemma's MLP input norm is
            // pre_feedforward_layernorm; OLMo 2 has none).
            let (input_norm, attention_out_norm, mlp_in_norm, mlp_out_norm) =
                match cfg.switches.norms {
                    NormPlacement::Pre => (
                        norm("input_layernorm")?,
                        None,
                        norm("post_attention_layernorm")?,
                        None,
                    ),
                    NormPlacement::PreAndPost => (
                        norm("input_layernorm")?,
                        norm("post_attention_layernorm")?,
                        norm("pre_feedforward_layernorm")?,
                        norm("post_feedforward_layernorm")?,
                    ),
                    NormPlacement::Post => (
                        None,
                        norm("post_attention_layernorm")?,
                        None,
                        norm("post_feedforward_layernorm")?,
                    ),
                };
            layers.push(Layer {
                attention: Attention::load(cfg, &lvb.pp("self_attn"))?,
                mlp: Mlp::load(cfg, &lvb.pp("mlp"))?,
                input_norm,
                attention_out_norm,
                mlp_in_norm,
                mlp_out_norm,
                kind: *kind,
            });
        }
        let norm = rms_norm(&model, "norm", cfg.hidden_size, cfg)?;
        let tied_quantized = quantized.and_then(|q| q.get("model.embed_tokens.weight"));
        let lm_head = match (cfg.tie_word_embeddings, tied_quantized) {
            (true, Some(q)) => Linear::Quantized {
                linear: QuantizedLinear::new(
                    q.clone(),
                    None,
                    quantized.map_or(Activations::F32, |w| w.activations),
                )?,
                counted: false,
            },
            (true, None) => match &embed {
                TokenEmbedding::Dense(e) => {
                    Linear::Dense(candle_nn::Linear::new(e.embeddings().clone(), None))
                }
                TokenEmbedding::Packed(weight) => Linear::Packed {
                    weight: weight.clone(),
                    bias: None,
                    counted: false,
                },
                TokenEmbedding::Quantized(_) => {
                    return Err(EngineError::Input(
                        "a quantized embedding needs its quantized tensor".into(),
                    ))
                }
            },
            (false, _) => linear(&root, "lm_head", cfg.hidden_size, cfg.vocab_size, false)?,
        };
        Ok(Self {
            rope_full: RopeFrequencies::new(&cfg.rope_full, cfg.head_dim),
            rope_sliding: RopeFrequencies::new(&cfg.rope_sliding, cfg.head_dim),
            device: vb.device().clone(),
            dtype: root.compute,
            weights_dtype: vb.dtype(),
            activations: quantized.map_or(Activations::F32, |q| q.activations),
            embed,
            layers,
            norm,
            lm_head,
            config,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn weights_dtype(&self) -> DType {
        self.weights_dtype
    }

    /// What the quantized products take: 8-bit activations under `q8`.
    pub fn activations(&self) -> Activations {
        self.activations
    }

    /// Width of the logits: the embedding's row count, which may exceed the tokenizer's vocabulary.
    pub fn logits_width(&self) -> usize {
        self.config.vocab_size
    }

    /// Number of weights, counting a tied embedding once.
    pub fn parameter_count(&self) -> usize {
        let linear = Linear::parameter_count;
        let mut n = self.embed.elem_count() + self.config.hidden_size;
        for layer in &self.layers {
            let a = &layer.attention;
            let m = &layer.mlp;
            n += [&a.q, &a.k, &a.v, &a.o, &m.gate, &m.up, &m.down]
                .into_iter()
                .map(linear)
                .sum::<usize>();
            let norms = [
                layer.input_norm.as_ref(),
                layer.attention_out_norm.as_ref(),
                layer.mlp_in_norm.as_ref(),
                layer.mlp_out_norm.as_ref(),
            ];
            let qk = [a.q_norm.as_ref(), a.k_norm.as_ref()];
            n += norms
                .into_iter()
                .chain(qk)
                .flatten()
                .map(|norm| norm.weight().elem_count())
                .sum::<usize>();
        }
        if !self.config.tie_word_embeddings {
            n += self.lm_head.parameter_count();
        }
        n
    }

    /// A cache sized at first for `positions` (at most the context length).
    pub fn new_cache_for(&self, positions: usize) -> KvCache {
        KvCache::new(
            self.layers.len(),
            positions.min(self.config.max_position_embeddings),
            self.rope_full.long.as_ref().map(|(_, after)| *after),
        )
    }

    /// Whether a sequence of `positions` positions takes LongRoPE's long
    /// frequencies: past the original context, as transformers decides for a
    /// pass over it.
    fn long_rope(&self, positions: usize) -> bool {
        self.rope_full
            .long
            .as_ref()
            .is_some_and(|(_, after)| positions > *after)
    }

    /// Checks that `tokens`, placed after `start` earlier tokens, fit the
    /// model's context and vocabulary.
    pub fn check_tokens(&self, tokens: &[u32], start: usize) -> Result<()> {
        let limit = self.config.max_position_embeddings;
        if start + tokens.len() > limit {
            return Err(EngineError::Input(format!(
                "sequence of {} tokens exceeds the model's context of {limit} tokens; shorten the prompt or answer",
                start + tokens.len()
            )));
        }
        if let Some(bad) = tokens
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(EngineError::Input(format!(
                "token id {bad} is outside the model's vocabulary of {} tokens",
                self.config.vocab_size
            )));
        }
        Ok(())
    }

    /// Final-norm hidden states `[T, hidden]` for every position of `tokens`.
    /// With a cache, `tokens` continue the cached sequence and are appended to it.
    pub fn hidden_states(&self, tokens: &[u32], cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.hidden_states_packed(
            tokens,
            &mut [Segment {
                len: tokens.len(),
                cache,
            }],
        )
    }

    /// Hidden states `[N, hidden]` of several sequences in one pass: `tokens`
    /// holds each segment's tokens back to back, in order. Every sequence sees
    /// only itself (and its cache); each row equals a pass over its sequence alone.
    pub fn hidden_states_packed(&self, tokens: &[u32], segments: &mut [Segment]) -> Result<Tensor> {
        let n = tokens.len();
        if n == 0 || segments.iter().any(|s| s.len == 0) {
            return Err(EngineError::Input("empty token sequence".into()));
        }
        if segments.iter().map(|s| s.len).sum::<usize>() != n {
            return Err(EngineError::Input(
                "the segments do not add up to the packed tokens".into(),
            ));
        }
        let starts: Vec<usize> = segments
            .iter()
            .map(|s| s.cache.as_ref().map_or(0, |c| c.len))
            .collect();
        let mut row = 0;
        for (segment, &start) in segments.iter().zip(&starts) {
            self.check_tokens(&tokens[row..row + segment.len], start)?;
            row += segment.len;
        }
        // LongRoPE's regime is the sequence's: fixed by its planned length at its
        // first pass (a cache's reserve), so a cached sequence never mixes regimes.
        let longs: Vec<bool> = segments
            .iter_mut()
            .zip(&starts)
            .map(|(s, &start)| match s.cache.as_deref_mut() {
                Some(c) => {
                    let planned = c.reserve.max(start + s.len);
                    *c.rope_long.get_or_insert(self.long_rope(planned))
                }
                None => self.long_rope(start + s.len),
            })
            .collect();
        let rope_tables = |freqs: &RopeFrequencies| -> Result<(Tensor, Tensor)> {
            let mut cos = Vec::with_capacity(segments.len());
            let mut sin = Vec::with_capacity(segments.len());
            for ((segment, &start), &long) in segments.iter().zip(&starts).zip(&longs) {
                let inv = freqs.for_sequence(long);
                let (c, s) = rope::cos_sin(inv, freqs.scale, start, segment.len, &self.device)?;
                cos.push(c);
                sin.push(s);
            }
            let (c, s) = if cos.len() == 1 {
                (cos.remove(0), sin.remove(0))
            } else {
                (Tensor::cat(&cos, 0)?, Tensor::cat(&sin, 0)?)
            };
            Ok((c.to_dtype(self.dtype)?, s.to_dtype(self.dtype)?))
        };
        let full = rope_tables(&self.rope_full)?;
        let sliding = if self.rope_sliding == self.rope_full {
            None
        } else {
            Some(rope_tables(&self.rope_sliding)?)
        };
        let masks = MaskCache::default();
        let mut x = self
            .embed
            .forward(tokens, &self.device)?
            .to_dtype(self.dtype)?;
        if let Some(scale) = self.config.switches.embed_scale {
            // transformers rounds the scale to the weights' dtype first
            let scale = Tensor::new(scale as f32, &self.device)?.to_dtype(self.dtype)?;
            x = x.broadcast_mul(&scale)?;
        }
        // A decode step (one new token per cached sequence) may take more rows
        // through the decode kernels than other passes (see PASS_ROWS).
        let max_rows = if segments.iter().all(|s| s.len == 1 && s.cache.is_some()) {
            DECODE_ROWS
        } else {
            PASS_ROWS
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let (window, tables) = match layer.kind {
                LayerAttention::Full => (None, &full),
                LayerAttention::Sliding(w) => (Some(w), sliding.as_ref().unwrap_or(&full)),
            };
            let mut attention_segments: Vec<AttnSegment> = segments
                .iter_mut()
                .zip(&starts)
                .map(|(s, &start)| AttnSegment {
                    start,
                    len: s.len,
                    reserve: s.cache.as_ref().map_or(0, |c| c.reserve),
                    cache: s.cache.as_deref_mut().map(|c| &mut c.layers[i]),
                })
                .collect();
            let h = apply(&layer.input_norm, x.clone())?;
            let h = layer.attention.forward(
                &h,
                &mut attention_segments,
                (&tables.0, &tables.1),
                window,
                &masks,
                max_rows,
            )?;
            x = (x + apply(&layer.attention_out_norm, h)?)?;
            let h = layer
                .mlp
                .forward(&apply(&layer.mlp_in_norm, x.clone())?, max_rows)?;
            x = (x + apply(&layer.mlp_out_norm, h)?)?;
        }
        for segment in segments.iter_mut() {
            if let Some(c) = segment.cache.as_deref_mut() {
                c.len += segment.len;
            }
        }
        Ok(self.norm.forward(&x)?)
    }

    /// Logits `[n, width]` for hidden-state rows `[n, hidden]` written into
    /// `out` (its memory reused: no fresh buffer per scoring chunk), the same
    /// values as [`Self::logits`] (soft-capped in place where the model caps
    /// them). False, with `out` untouched, where the output projection is
    /// neither packed nor quantized (many rows, on the CPU).
    pub fn logits_into(&self, hidden: &Tensor, out: &mut Vec<f32>) -> Result<bool> {
        let rows = hidden.dim(0)?;
        match &self.lm_head {
            Linear::Packed {
                weight, bias: None, ..
            } => {
                let x = hidden
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                weight.matmul_into(&x, rows, out);
            }
            // The path `forward` takes for these rows (see QuantizedLinear::forward).
            Linear::Quantized { linear, .. }
                if linear.bias().is_none() && rows > DECODE_ROWS && hidden.device().is_cpu() =>
            {
                let hidden = hidden.to_dtype(DType::F32)?;
                if linear.takes_int8() {
                    linear.int8_into(&hidden, out)?;
                } else {
                    linear.tiles_into(&hidden, out)?;
                }
            }
            _ => return Ok(false),
        }
        if let Some(cap) = self.config.switches.final_logit_softcapping {
            // As `logits` computes it, (x / cap).tanh() * cap in f32 (to 2e-7 of the tanh).
            let cap = cap as f32;
            out.iter_mut()
                .for_each(|x| *x = crate::kernels::cpu_ops::soft_cap(*x, cap));
        }
        Ok(true)
    }

    /// Logits `[n, width]` in f32 for hidden-state rows `[n, hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        // Rows here are positions of one answer chunk or a decode step's
        // sequences, the same for a record with or without a reused prefix.
        let logits = self
            .lm_head
            .forward(hidden, DECODE_ROWS)?
            .to_dtype(DType::F32)?;
        Ok(match self.config.switches.final_logit_softcapping {
            Some(cap) => ((logits / cap)?.tanh()? * cap)?,
            None => logits,
        })
    }
}
