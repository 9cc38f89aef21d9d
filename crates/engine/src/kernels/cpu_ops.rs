//! Fused CPU kernels for the work between the matrix products, where candle's
//! generic ops would make several passes, allocate, and call the scalar libm
//! exp on one thread: the causal attention softmax (scale, mask and softmax in
//! one parallel pass that touches only visible keys) and the gated MLP
//! activation. Other devices keep the generic ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::config::Activation;
use crate::kernels::fastmath::exp_f32;

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fused kernels need contiguous f32 input"),
    }
}

/// Softmax over visible keys of `scale * scores`, scores `[groups, rows, keys]`:
/// row r of a group is the query at position `q0 + r / rep`; key j is at
/// `key_start + j` and visible when at or before the query and, with a sliding
/// window w, after `query - w`. Invisible keys get probability 0.
pub struct CausalSoftmax {
    pub q0: usize,
    pub rep: usize,
    pub key_start: usize,
    pub window: Option<usize>,
    pub scale: f32,
    /// Gemma 2's tanh soft-cap of the scaled scores, before the mask.
    pub softcap: Option<f32>,
}

impl CausalSoftmax {
    /// The visible key range `[lo, hi)` (indices into the row) of row `r`.
    fn visible(&self, r: usize, keys: usize) -> (usize, usize) {
        let q = self.q0 + r / self.rep;
        let lowest = self.window.map_or(0, |w| (q + 1).saturating_sub(w));
        let hi = (q + 1).saturating_sub(self.key_start).min(keys);
        let lo = lowest.saturating_sub(self.key_start).min(hi);
        (lo, hi)
    }
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = contiguous(storage, layout)?;
        let (_, rows, keys) = layout.shape().dims3()?;
        let mut dst = vec![0f32; src.len()];
        dst.par_chunks_mut(keys)
            .zip(src.par_chunks(keys))
            .enumerate()
            .for_each(|(i, (out, row))| {
                let (lo, hi) = self.visible(i % rows, keys);
                if lo == hi {
                    return;
                }
                match self.softcap {
                    None => softmax_row(&row[lo..hi], &mut out[lo..hi], self.scale),
                    Some(cap) => {
                        let capped: Vec<f32> = row[lo..hi]
                            .iter()
                            .map(|&x| soft_cap(x * self.scale, cap))
                            .collect();
                        softmax_row(&capped, &mut out[lo..hi], 1.0);
                    }
                }
            });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// `cap * tanh(x / cap)`, as transformers soft-caps Gemma 2's attention scores.
#[inline(always)]
pub(crate) fn soft_cap(x: f32, cap: f32) -> f32 {
    crate::kernels::fastmath::tanh_f32(x / cap) * cap
}

/// The softmax of `scale * row` into `out`: the exponentials in one
/// vectorisable pass, then their sum in order, so a row's probabilities do not
/// depend on the vector width.
#[inline(always)]
fn softmax_row_kernel(row: &[f32], out: &mut [f32], scale: f32) {
    let max = crate::kernels::fastmath::max_f32(row) * scale;
    for (o, &x) in out.iter_mut().zip(row) {
        *o = exp_f32(x * scale - max);
    }
    let mut sum = 0f32;
    for &e in out.iter() {
        sum += e;
    }
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|o| *o *= inv);
}

crate::widest!(fn softmax_row(row: &[f32], out: &mut [f32], scale: f32) = softmax_row_kernel);

/// Attention of the newest position only (generation with a KV cache), for
/// several sequences at once: q `[n, groups, rep, hd]` (row b: sequence b's
/// newest query) against sequence b's cached keys and values
/// `[groups, capacity, hd]`, of which the first `len` rows are filled; every
/// key visible but those a sliding window `window` hides. Returns
/// `[n, groups * rep * hd]`. Small per sequence, so one parallel pass over
/// (sequence, group) costs less than candle's two products and a softmax each.
pub fn decode_attention(
    q: &Tensor,
    caches: &[(Tensor, Tensor, usize)],
    window: Option<usize>,
    (scale, softcap): (f32, Option<f32>),
) -> candle_core::Result<Tensor> {
    let (n, groups, rep, hd) = q.dims4()?;
    if caches.len() != n {
        candle_core::bail!("decode attention: {n} queries but {} caches", caches.len());
    }
    let device = q.device().clone();
    let q = q.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; n * groups * rep * hd];
    // Each cache's storage, read in place: copying it out would cost what the kernel saves.
    let guards: Vec<_> = caches
        .iter()
        .map(|(k, v, len)| (k.storage_and_layout(), v.storage_and_layout(), *len))
        .collect();
    let mut views = Vec::with_capacity(n);
    for ((ks, kl), (vs, vl), len) in &guards {
        let (candle_core::Storage::Cpu(k), candle_core::Storage::Cpu(v)) = (&**ks, &**vs) else {
            candle_core::bail!("decode attention runs on the CPU");
        };
        let (k, v) = (contiguous(k, kl)?, contiguous(v, vl)?);
        let capacity = kl.shape().dims3()?.1;
        if *len > capacity || k.len() != groups * capacity * hd || v.len() != k.len() {
            candle_core::bail!("decode attention: a cache does not match the queries");
        }
        views.push((k, v, capacity, *len));
    }
    let shape = DecodeShape {
        rep,
        hd,
        window,
        scale,
        softcap,
    };
    out.par_chunks_mut(rep * hd)
        .enumerate()
        .for_each(|(task, out)| {
            let (b, g) = (task / groups, task % groups);
            let (k, v, capacity, s) = views[b];
            let (kg, vg) = (
                &k[g * capacity * hd..(g * capacity + s) * hd],
                &v[g * capacity * hd..(g * capacity + s) * hd],
            );
            let row = (b * groups + g) * rep * hd;
            decode_group(&shape, &q[row..row + rep * hd], kg, vg, out);
        });
    Tensor::from_vec(out, (n, groups * rep * hd), &device)
}

/// What every (sequence, kv group) task of [`decode_attention`] shares.
struct DecodeShape {
    rep: usize,
    hd: usize,
    window: Option<usize>,
    scale: f32,
    softcap: Option<f32>,
}

/// Lanes of the query-key dot products: partial sums the compiler keeps in
/// vector registers (a plain left-to-right sum is scalar by the rules of
/// floating point), reduced in a fixed order.
const DOT_LANES: usize = 16;

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; DOT_LANES];
    let (ac, bc) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..DOT_LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// One (sequence, kv group)'s `rep` query rows `q` against its keys `kg` and
/// values `vg` (`[len, hd]` each), into `out` (`[rep, hd]`).
#[inline(always)]
fn decode_group_kernel(shape: &DecodeShape, q: &[f32], kg: &[f32], vg: &[f32], out: &mut [f32]) {
    let hd = shape.hd;
    let s = kg.len() / hd.max(1);
    let first = shape.window.map_or(0, |w| s.saturating_sub(w));
    let mut scores = vec![0f32; s];
    for r in 0..shape.rep {
        let qr = &q[r * hd..(r + 1) * hd];
        for (j, sc) in scores.iter_mut().enumerate().skip(first) {
            *sc = dot(qr, &kg[j * hd..(j + 1) * hd]) * shape.scale;
        }
        if let Some(cap) = shape.softcap {
            scores[first..]
                .iter_mut()
                .for_each(|sc| *sc = soft_cap(*sc, cap));
        }
        let visible = &mut scores[first..];
        let max = crate::kernels::fastmath::max_f32(visible);
        for sc in visible.iter_mut() {
            *sc = exp_f32(*sc - max);
        }
        let mut sum = 0f32;
        for &e in visible.iter() {
            sum += e;
        }
        let o = &mut out[r * hd..(r + 1) * hd];
        for (j, &p) in visible.iter().enumerate() {
            let vj = &vg[(first + j) * hd..(first + j + 1) * hd];
            for (oi, &vi) in o.iter_mut().zip(vj) {
                *oi += p * vi;
            }
        }
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|x| *x *= inv);
    }
}

crate::widest!(
    /// [`decode_group_kernel`] compiled for the widest vectors this CPU has.
    fn decode_group(shape: &DecodeShape, q: &[f32], kg: &[f32], vg: &[f32], out: &mut [f32]) = decode_group_kernel
);

/// `act(gate) * up`, elementwise, in one parallel pass.
pub struct GatedActivation(pub Activation);

#[inline(always)]
fn activate(activation: Activation, x: f32) -> f32 {
    match activation {
        Activation::Silu => x / (1.0 + exp_f32(-x)),
        // The tanh approximation of GELU, with tanh(y) = 1 - 2 / (e^(2y) + 1).
        Activation::GeluTanh => {
            let y = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            let tanh = 1.0 - 2.0 / (exp_f32(2.0 * y) + 1.0);
            0.5 * x * (1.0 + tanh)
        }
    }
}

#[inline(always)]
fn gate_kernel(act: Activation, out: &mut [f32], g: &[f32], u: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        *o = activate(act, g) * u;
    }
}

crate::widest!(fn gated(act: Activation, out: &mut [f32], g: &[f32], u: &[f32]) = gate_kernel);

impl CustomOp2 for GatedActivation {
    fn name(&self) -> &'static str {
        "gated-activation"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (gate, up) = (contiguous(s1, l1)?, contiguous(s2, l2)?);
        if l1.shape() != l2.shape() {
            candle_core::bail!("gate {:?} and up {:?} differ", l1.shape(), l2.shape());
        }
        let mut dst = vec![0f32; gate.len()];
        const CHUNK: usize = 4096;
        let act = self.0;
        dst.par_chunks_mut(CHUNK)
            .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
            .for_each(|(out, (g, u))| gated(act, out, g, u));
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn lane_dot_products_match_f64_sums_with_and_without_a_tail() {
        for len in [16, 64, 80, 256, 7] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37) % 11) as f32 * 0.3 - 1.4)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 13) % 7) as f32 * 0.2 - 0.6)
                .collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let got = dot(&a, &b) as f64;
            assert!(
                (got - want).abs() < 1e-5 * want.abs().max(1.0),
                "{len}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn causal_softmax_matches_mask_then_softmax() {
        let (groups, bt, rep, keys) = (2, 3, 2, 7);
        let data: Vec<f32> = (0..groups * bt * rep * keys)
            .map(|i| ((i * 7919) % 23) as f32 * 0.37 - 4.0)
            .collect();
        let scores =
            Tensor::from_vec(data.clone(), (groups, bt * rep, keys), &Device::Cpu).unwrap();
        for (window, softcap) in [(None, None), (Some(3), None), (Some(3), Some(1.5))] {
            let op = CausalSoftmax {
                q0: 4,
                rep,
                key_start: 1,
                window,
                scale: 0.5,
                softcap,
            };
            // Gemma 2: cap * tanh(scaled / cap), then the softmax.
            let score = |x: f32| {
                let scaled = 0.5 * x as f64;
                softcap.map_or(scaled, |c: f32| c as f64 * (scaled / c as f64).tanh())
            };
            let ours = scores
                .apply_op1_no_bwd(&op)
                .unwrap()
                .to_vec3::<f32>()
                .unwrap();
            for g in 0..groups {
                for r in 0..bt * rep {
                    let q = 4 + r / rep;
                    let row = &data[(g * bt * rep + r) * keys..][..keys];
                    let visible = |j: usize| {
                        let k = 1 + j;
                        k <= q && window.is_none_or(|w| k + w > q)
                    };
                    let z: f64 = (0..keys)
                        .filter(|&j| visible(j))
                        .map(|j| score(row[j]).exp())
                        .sum();
                    for j in 0..keys {
                        let want = if visible(j) {
                            score(row[j]).exp() / z
                        } else {
                            0.0
                        };
                        assert!(
                            (ours[g][r][j] as f64 - want).abs() < 1e-6,
                            "{window:?} {g} {r} {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gated_activations_match_their_definitions() {
        let xs: Vec<f32> = (0..101).map(|i| i as f32 * 0.17 - 8.5).collect();
        let gate = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        let up = Tensor::new(vec![1.5f32; xs.len()].as_slice(), &Device::Cpu).unwrap();
        for act in [Activation::Silu, Activation::GeluTanh] {
            let ours = gate
                .apply_op2_no_bwd(&up, &GatedActivation(act))
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (&x, o) in xs.iter().zip(ours) {
                let x = x as f64;
                let want = match act {
                    Activation::Silu => x / (1.0 + (-x).exp()),
                    Activation::GeluTanh => {
                        0.5 * x
                            * (1.0
                                + ((2.0 / std::f64::consts::PI).sqrt()
                                    * (x + 0.044715 * x.powi(3)))
                                .tanh())
                    }
                } * 1.5;
                assert!(
                    (o as f64 - want).abs() < 2e-6 * want.abs().max(1.0),
                    "{act:?} {x}: {o} vs {want}"
                );
            }
        }
    }
}
