//! Rotary position embeddings, computed the way transformers computes them
//! (inverse frequencies and angles in f32) so positions far into a long
//! sequence round the same way.

use candle_core::{Device, Tensor};

use crate::config::{RopeConfig, RopeScaling};
use crate::error::Result;

/// Inverse frequencies for one rope configuration, `head_dim / 2` of them
/// (LongRoPE's short ones; see [`long_inverse_frequencies`]).
pub fn inverse_frequencies(rope: &RopeConfig, head_dim: usize) -> Vec<f32> {
    let base = rope.theta;
    let inv: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| {
            let exponent = i as f32 / head_dim as f32;
            1.0 / (base as f32).powf(exponent)
        })
        .collect();
    match &rope.scaling {
        RopeScaling::Default => inv,
        RopeScaling::Linear { factor } => inv.iter().map(|f| f / *factor as f32).collect(),
        RopeScaling::Factors(factors) => inv.iter().zip(factors).map(|(f, d)| f / d).collect(),
        RopeScaling::LongRope { short, .. } => divided(rope.theta, head_dim, short),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old_len,
        } => {
            let (factor, low, high, old_len) = (
                *factor as f32,
                *low_freq_factor as f32,
                *high_freq_factor as f32,
                *old_len as f32,
            );
            let low_freq_wavelen = old_len / low;
            let high_freq_wavelen = old_len / high;
            inv.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        f
                    };
                    // wavelengths are finite and positive, so the negations are plain comparisons
                    let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                    if is_medium {
                        let smooth = (old_len / wavelen - low) / (high - low);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}

/// LongRoPE's frequencies for sequences longer than the original context,
/// and that context's length; None for other rope types.
pub fn long_inverse_frequencies(rope: &RopeConfig, head_dim: usize) -> Option<(Vec<f32>, usize)> {
    match &rope.scaling {
        RopeScaling::LongRope {
            long,
            original_max_position_embeddings,
            ..
        } => Some((
            divided(rope.theta, head_dim, long),
            *original_max_position_embeddings,
        )),
        _ => None,
    }
}

/// What cos and sin are multiplied by (LongRoPE's attention factor; else 1).
pub fn attention_factor(rope: &RopeConfig) -> f32 {
    match rope.scaling {
        RopeScaling::LongRope {
            attention_factor, ..
        } => attention_factor as f32,
        _ => 1.0,
    }
}

/// 1 / (factor_i * base^(2i / head_dim)), in f32 as transformers' LongRoPE computes it.
fn divided(base: f64, head_dim: usize, factors: &[f32]) -> Vec<f32> {
    (0..head_dim)
        .step_by(2)
        .zip(factors)
        .map(|(i, d)| 1.0 / (d * (base as f32).powf(i as f32 / head_dim as f32)))
        .collect()
}

/// cos and sin tables of shape `[len, head_dim / 2]` for positions `start..start + len`.
/// Both are multiplied by `scale` (LongRoPE's attention factor; 1 otherwise).
pub fn cos_sin(
    inv_freq: &[f32],
    scale: f32,
    start: usize,
    len: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(len * half);
    let mut sin = Vec::with_capacity(len * half);
    for p in start..start + len {
        for &f in inv_freq {
            let angle = (p as f32) * f;
            cos.push((angle as f64).cos() as f32 * scale);
            sin.push((angle as f64).sin() as f32 * scale);
        }
    }
    Ok((
        Tensor::from_vec(cos, (len, half), device)?,
        Tensor::from_vec(sin, (len, half), device)?,
    ))
}
