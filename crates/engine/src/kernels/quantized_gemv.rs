//! Matrix-vector products straight from GGUF blocks (or dense f32, bf16 or
//! f16 rows), for generation (a few rows at a time: a batch of sequences'
//! newest tokens). Each block is dequantized (a half-precision row widened)
//! in registers and multiplied with
//! the f32 activations, so no 8-bit rounding of the activations happens (the
//! results match the dequantized weights' f32 product, as teacher forcing
//! computes it) and the loops vectorise: candle's kernels for Q4_1 and Q5_0
//! are scalar. Output rows are split across threads.

use rayon::prelude::*;

use candle_core::quantized::GgmlDType;

use super::ggml_blocks::{half_bits, q4k_scale_min};

/// Block layouts (ggml): 32 weights per block.
const QK: usize = 32;

/// The types handled here, with their block size in bytes.
pub fn block_bytes(dtype: GgmlDType) -> Option<usize> {
    match dtype {
        GgmlDType::Q4_0 => Some(18),
        GgmlDType::Q4_1 => Some(20),
        GgmlDType::Q5_0 => Some(22),
        GgmlDType::Q8_0 => Some(34),
        GgmlDType::Q4K => Some(144),
        GgmlDType::Q6K => Some(210),
        // Dense weights, 32 to a "block": the same loop serves decoding in
        // f32, and in bf16 and f16 reads each weight's two bytes once per step.
        GgmlDType::F32 => Some(4 * QK),
        GgmlDType::BF16 | GgmlDType::F16 => Some(2 * QK),
        _ => None,
    }
}

/// Weights per block: 256 for the K-quants (8 sub-blocks of 32), else 32.
pub fn block_weights(dtype: GgmlDType) -> usize {
    match dtype {
        GgmlDType::Q4K | GgmlDType::Q6K => 256,
        _ => QK,
    }
}

/// Sub-block `s` (0..8) of a K-quant super-block `b`: its 32 values with any
/// per-16 scale folded in, and its (scale, min) as for the 32-weight types.
#[inline(always)]
fn unpack_k(
    dtype: GgmlDType,
    b: &[u8],
    s: usize,
    q: &mut [f32; QK],
    h: &impl Fn(u16) -> f32,
) -> (f32, f32) {
    let half = |at: usize| h(u16::from_le_bytes([b[at], b[at + 1]]));
    if dtype == GgmlDType::Q4K {
        // d, dmin, 12 bytes of 6-bit (scale, min) pairs, then nibbles in 64-weight pairs.
        let (scale, min) = q4k_scale_min(&b[4..16], s);
        let start = 16 + (s / 2) * 32;
        let qs: &[u8; 32] = b[start..start + 32].try_into().unwrap_or(&[0; 32]);
        let shift = 4 * (s % 2) as u32;
        for (o, &v) in q.iter_mut().zip(qs) {
            *o = ((v >> shift) & 15) as f32;
        }
        (half(0) * scale as f32, -(half(2) * min as f32))
    } else {
        // Q6_K: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 signed scales, d.
        let (n, quarter) = (s / 4, s % 4);
        let ql_start = n * 64 + 32 * (quarter % 2);
        let ql: &[u8; 32] = b[ql_start..ql_start + 32].try_into().unwrap_or(&[0; 32]);
        let qh: &[u8; 32] = b[128 + n * 32..128 + n * 32 + 32]
            .try_into()
            .unwrap_or(&[0; 32]);
        let (low_shift, high_shift) = (4 * (quarter / 2) as u32, 2 * quarter as u32);
        let scales = [
            b[192 + n * 8 + quarter * 2] as i8 as f32,
            b[192 + n * 8 + quarter * 2 + 1] as i8 as f32,
        ];
        for (l, o) in q.iter_mut().enumerate() {
            let v = ((ql[l] >> low_shift) & 15) | (((qh[l] >> high_shift) & 3) << 4);
            *o = scales[l / 16] * (v as f32 - 32.0);
        }
        (half(208), 0.0)
    }
}

/// Σ over one block of w_i x_i into 16 lanes, the block's weights being
/// `scale * q_i + min`; returns the min's share, `min * Σ x`.
#[inline(always)]
fn block_dot(
    q: &[f32; QK],
    x: &[f32; QK],
    scale: f32,
    min: f32,
    xsum: f32,
    acc: &mut [f32; 16],
) -> f32 {
    for i in 0..16 {
        acc[i] += scale * (q[i] * x[i] + q[i + 16] * x[i + 16]);
    }
    min * xsum
}

/// Unpacks one block into its 32 integer values (as f32) and its scale and min.
/// Fixed-size views keep the loops free of bounds checks, so they vectorise.
#[inline(always)]
fn unpack(dtype: GgmlDType, b: &[u8], q: &mut [f32; QK], h: &impl Fn(u16) -> f32) -> (f32, f32) {
    let half = |b: &[u8], at: usize| h(u16::from_le_bytes([b[at], b[at + 1]]));
    let (lo, hi) = q.split_at_mut(16);
    match dtype {
        GgmlDType::Q4_0 => {
            let qs: &[u8; 16] = b[2..18].try_into().unwrap_or(&[0; 16]);
            for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
                *l = (v & 15) as f32 - 8.0;
                *h = (v >> 4) as f32 - 8.0;
            }
            (half(b, 0), 0.0)
        }
        GgmlDType::Q4_1 => {
            let qs: &[u8; 16] = b[4..20].try_into().unwrap_or(&[0; 16]);
            for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
                *l = (v & 15) as f32;
                *h = (v >> 4) as f32;
            }
            (half(b, 0), half(b, 2))
        }
        GgmlDType::Q5_0 => {
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            let qs: &[u8; 16] = b[6..22].try_into().unwrap_or(&[0; 16]);
            for (j, ((l, h), &v)) in lo.iter_mut().zip(hi.iter_mut()).zip(qs).enumerate() {
                let h0 = ((qh >> j) & 1) << 4;
                let h1 = ((qh >> (j + 16)) & 1) << 4;
                *l = ((v & 15) as u32 | h0) as f32 - 16.0;
                *h = ((v >> 4) as u32 | h1) as f32 - 16.0;
            }
            (half(b, 0), 0.0)
        }
        GgmlDType::F32 => {
            let bytes: &[u8; 4 * QK] = b[..4 * QK].try_into().unwrap_or(&[0; 4 * QK]);
            for (o, c) in q.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            (1.0, 0.0)
        }
        GgmlDType::BF16 => {
            // bf16 is the top half of an f32: widening is a shift, exact.
            let bytes: &[u8; 2 * QK] = b[..2 * QK].try_into().unwrap_or(&[0; 2 * QK]);
            for (o, c) in q.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
            (1.0, 0.0)
        }
        GgmlDType::F16 => {
            let bytes: &[u8; 2 * QK] = b[..2 * QK].try_into().unwrap_or(&[0; 2 * QK]);
            for (o, c) in q.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = h(u16::from_le_bytes([c[0], c[1]]));
            }
            (1.0, 0.0)
        }
        _ => {
            // Q8_0
            let qs: &[u8; 32] = b[2..34].try_into().unwrap_or(&[0; 32]);
            for (o, &v) in q.iter_mut().zip(qs) {
                *o = v as i8 as f32;
            }
            (half(b, 0), 0.0)
        }
    }
}

/// Most activation rows one pass takes: each unpacked block is dotted with all
/// of them, so a batch of generated tokens reads the weights once.
pub const MAX_ROWS: usize = 32;

/// Activation rows dotted together with one unpacked block (their
/// accumulators stay in registers).
const GROUP: usize = 4;

/// `Σ_k w_k x[r][k]` for one weight row (its blocks in `row`) and each of the
/// `N` activation rows `xs` (with their per-block sums). A block is unpacked
/// once for all of them; each row's sum runs in the same order whatever `N`
/// is, so a row's result does not depend on the rows batched with it.
#[inline(always)]
fn row_dot<const N: usize>(
    dtype: GgmlDType,
    row: &[u8],
    bytes: usize,
    xs: [&[f32]; N],
    xsums: [&[f32]; N],
    h: &impl Fn(u16) -> f32,
) -> [f32; N] {
    let mut acc = [[0f32; 16]; N];
    let mut mins = [0f32; N];
    let mut q = [0f32; QK];
    // No closure here: a closure is not compiled with the caller's target features.
    let k_quant = block_weights(dtype) > QK;
    let subs = if k_quant { 8 } else { 1 };
    for (kb, b) in row.chunks_exact(bytes).enumerate() {
        for s in 0..subs {
            let (scale, min) = if k_quant {
                unpack_k(dtype, b, s, &mut q, h)
            } else {
                unpack(dtype, b, &mut q, h)
            };
            let at = kb * subs + s;
            for r in 0..N {
                let xb: &[f32; QK] = xs[r][at * QK..(at + 1) * QK]
                    .try_into()
                    .unwrap_or(&[0.0; QK]);
                mins[r] += block_dot(&q, xb, scale, min, xsums[r][at], &mut acc[r]);
            }
        }
    }
    let mut out = [0f32; N];
    for r in 0..N {
        out[r] = acc[r].iter().sum::<f32>() + mins[r];
    }
    out
}

/// Weight rows `rows` against the `m` activation rows `x` (`m * k`, with
/// per-block sums `xsums`): `out` is `[rows, m]`.
#[inline(always)]
fn rows_kernel(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    x: &[f32],
    xsums: &[f32],
    out: &mut [f32],
    h: &impl Fn(u16) -> f32,
) {
    let bytes = block_bytes(dtype).unwrap_or(34);
    let m = (out.len() / (rows.len() / bytes_per_row.max(1)).max(1)).max(1);
    let k = x.len() / m;
    let blocks = xsums.len() / m;
    for (o, row) in out
        .chunks_exact_mut(m)
        .zip(rows.chunks_exact(bytes_per_row))
    {
        let mut r0 = 0;
        while r0 < m {
            let n = GROUP.min(m - r0);
            macro_rules! group {
                ($n:literal) => {{
                    let mut xs: [&[f32]; $n] = [&[]; $n];
                    let mut ss: [&[f32]; $n] = [&[]; $n];
                    for i in 0..$n {
                        let r = r0 + i;
                        xs[i] = &x[r * k..(r + 1) * k];
                        ss[i] = &xsums[r * blocks..(r + 1) * blocks];
                    }
                    o[r0..r0 + $n].copy_from_slice(&row_dot::<$n>(dtype, row, bytes, xs, ss, h));
                }};
            }
            match n {
                1 => group!(1),
                2 => group!(2),
                3 => group!(3),
                _ => group!(4),
            }
            r0 += n;
        }
    }
}

/// The portable loop compiled for one x86 feature level, F16C converting the
/// block scales in one instruction.
macro_rules! rows_with_features {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $name(
            dtype: GgmlDType,
            rows: &[u8],
            bytes_per_row: usize,
            x: &[f32],
            xsums: &[f32],
            out: &mut [f32],
        ) {
            let h = |bits: u16| {
                use std::arch::x86_64::{_mm_cvtph_ps, _mm_cvtsi32_si128, _mm_cvtss_f32};
                _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
            };
            rows_kernel(dtype, rows, bytes_per_row, x, xsums, out, &h)
        }
    };
}

/// Weight rows dequantized per tile before the blocked f32 kernel runs on them.
const TILE_ROWS: usize = 4;

/// Dequantizes weight rows (`rows`, `[t, bytes_per_row]`) into `tile`
/// (`[t, k]` f32) as candle's dequantize computes them (`q * scale + min`),
/// so the product below is the one teacher forcing takes on dequantized weights.
#[inline(always)]
fn dequantize_rows(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    tile: &mut [f32],
    h: &impl Fn(u16) -> f32,
) {
    // One copy of the loop per type, the type a constant in it, so the block
    // unpacking is not a branch per block and vectorises.
    macro_rules! by_type {
        ($($t:ident),*) => {
            match dtype {
                $(GgmlDType::$t => dequantize_rows_of(GgmlDType::$t, rows, bytes_per_row, tile, h),)*
                _ => dequantize_rows_of(dtype, rows, bytes_per_row, tile, h),
            }
        };
    }
    by_type!(Q4_0, Q4_1, Q5_0, Q8_0, Q4K, Q6K, BF16, F16)
}

#[inline(always)]
fn dequantize_rows_of(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    tile: &mut [f32],
    h: &impl Fn(u16) -> f32,
) {
    let bytes = block_bytes(dtype).unwrap_or(34);
    let k_quant = block_weights(dtype) > QK;
    let subs = if k_quant { 8 } else { 1 };
    let k = tile.len() / (rows.len() / bytes_per_row.max(1)).max(1);
    let mut q = [0f32; QK];
    for (row, t) in rows
        .chunks_exact(bytes_per_row)
        .zip(tile.chunks_exact_mut(k))
    {
        for (kb, b) in row.chunks_exact(bytes).enumerate() {
            for s in 0..subs {
                let (scale, min) = if k_quant {
                    unpack_k(dtype, b, s, &mut q, h)
                } else {
                    unpack(dtype, b, &mut q, h)
                };
                let at = (kb * subs + s) * QK;
                let Some(o) = t.get_mut(at..at + QK) else {
                    return;
                };
                let Ok(o) = <&mut [f32; QK]>::try_from(o) else {
                    return;
                };
                for i in 0..QK {
                    o[i] = q[i] * scale + min;
                }
            }
        }
    }
}

/// Quantized rows on AVX-512: each tile of [`TILE_ROWS`] weight rows is
/// dequantized once into f32 (in cache) and multiplied with all the activation
/// rows by the register-blocked kernel, instead of unpacking every block once
/// per group of activation rows and spending a scale multiply per product.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn rows_avx512_tiled(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    x: &[f32],
    out: &mut [f32],
) -> bool {
    let h = |bits: u16| {
        use std::arch::x86_64::{_mm_cvtph_ps, _mm_cvtsi32_si128, _mm_cvtss_f32};
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    };
    let Some(bytes) = block_bytes(dtype) else {
        return false;
    };
    let k = bytes_per_row / bytes * block_weights(dtype);
    let n = rows.len() / bytes_per_row.max(1);
    if k == 0 || n == 0 || !x.len().is_multiple_of(k) || out.len() != n * (x.len() / k) {
        return false;
    }
    let m = x.len() / k;
    let mut tile = vec![0f32; TILE_ROWS.min(n) * k];
    for (w, o) in rows
        .chunks(TILE_ROWS * bytes_per_row)
        .zip(out.chunks_mut(TILE_ROWS * m))
    {
        let t = &mut tile[..w.len() / bytes_per_row * k];
        dequantize_rows(dtype, w, bytes_per_row, t, &h);
        if !super::dense_gemv::rows(t, k, x, o) {
            return false;
        }
    }
    true
}

rows_with_features!(rows_avx512, "avx512f,avx512bw,avx512vl,avx2,fma,f16c");
rows_with_features!(rows_avx2, "avx2,fma,f16c");

/// The same loop compiled for the widest vectors this CPU has.
#[allow(unsafe_code)]
fn rows(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    x: &[f32],
    xsums: &[f32],
    out: &mut [f32],
) {
    if dtype == GgmlDType::F32 {
        if let Ok(w) = bytemuck::try_cast_slice::<u8, f32>(rows) {
            if super::dense_gemv::rows(w, bytes_per_row / 4, x, out) {
                return;
            }
        }
    } else {
        #[cfg(target_arch = "x86_64")]
        if super::dense_gemv::available() {
            // SAFETY: every feature the function enables was detected on this CPU just above.
            #[allow(unsafe_code)]
            if unsafe { rows_avx512_tiled(dtype, rows, bytes_per_row, x, out) } {
                return;
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::has_avx512() {
            // SAFETY: every feature the function enables was detected on this CPU just above.
            return unsafe { rows_avx512(dtype, rows, bytes_per_row, x, xsums, out) };
        }
        if super::simd::has_avx2() {
            // SAFETY: as above.
            return unsafe { rows_avx2(dtype, rows, bytes_per_row, x, xsums, out) };
        }
    }
    rows_kernel(dtype, rows, bytes_per_row, x, xsums, out, &half_bits)
}

/// One weight matrix `[n, k]` in GGUF blocks of `dtype` (see [`block_bytes`]);
/// `tiled`: Q4_0 rows repacked eight at a time for the integer kernels
/// (quantized_int8::q4_0x8), which alone take them.
pub struct GemvWeight<'a> {
    pub dtype: GgmlDType,
    pub data: &'a [u8],
    pub n: usize,
    pub tiled: bool,
}

impl<'a> GemvWeight<'a> {
    /// Row-major blocks.
    pub fn rows(dtype: GgmlDType, data: &'a [u8], n: usize) -> Self {
        Self {
            dtype,
            data,
            n,
            tiled: false,
        }
    }
}

/// `y[m, n] = x[m, k] · W^T` for each weight that shares the input `x` (the
/// q/k/v or gate/up projections of a layer), all output rows of all weights in
/// one parallel pass, each weight block read once for up to [`MAX_ROWS`]
/// activation rows. k must be a multiple of the types' blocks ([`block_weights`]).
pub fn gemv_many(weights: &[GemvWeight], k: usize, x: &[f32]) -> Vec<Vec<f32>> {
    gemv_many_with(weights, k, x, Activations::F32)
}

/// How the activations meet the weight blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activations {
    /// As they are: the dequantized weights' product (`--dtype q`).
    #[default]
    F32,
    /// Quantized to 8 bits per block, integer dot products (`--dtype q8`,
    /// llama.cpp's arithmetic; see quantized_int8) for the types that have
    /// them, f32 for the others.
    Int8,
}

/// [`gemv_many`] with the activations taken as `activations` says.
pub fn gemv_many_with(
    weights: &[GemvWeight],
    k: usize,
    x: &[f32],
    activations: Activations,
) -> Vec<Vec<f32>> {
    use super::quantized_int8 as int8;
    let m_all = x.len() / k.max(1);
    // Many rows in 8 bits meet each weight tile once (the same bits as below).
    if activations == Activations::Int8
        && m_all >= int8::GEMM_MIN_ROWS
        && int8::gemm_is_fast()
        && weights.iter().all(|w| int8::supported(w.dtype))
    {
        let tiles: Vec<int8::Weight> = weights
            .iter()
            .map(|w| int8::Weight {
                dtype: w.dtype,
                data: w.data,
                n: w.n,
                tiled: w.tiled,
            })
            .collect();
        let rows = int8::RowsByScheme::new(x, k, weights.iter().map(|w| w.dtype));
        return int8::gemm(&tiles, &rows);
    }
    let mut outs: Vec<Vec<f32>> = weights.iter().map(|w| vec![0f32; m_all * w.n]).collect();
    for r0 in (0..m_all).step_by(MAX_ROWS) {
        let m = MAX_ROWS.min(m_all - r0);
        let xs = &x[r0 * k..(r0 + m) * k];
        // Quantized each way the supported weights take them (none if none is).
        let int8_rows = (activations == Activations::Int8).then(|| {
            let types = weights
                .iter()
                .map(|w| w.dtype)
                .filter(|&d| int8::supported(d));
            int8::RowsByScheme::new(xs, k, types)
        });
        // The f32 kernels' per-block sums, only where some weight takes them.
        let f32_rows = int8_rows.is_none() || weights.iter().any(|w| !int8::supported(w.dtype));
        let xsums: Vec<f32> = match f32_rows {
            true => xs.chunks_exact(QK).map(|c| c.iter().sum()).collect(),
            false => Vec::new(),
        };
        // Each weight's products as [n, m] (output row major), so a task owns a
        // contiguous piece; transposed into [m, n] below.
        let mut transposed: Vec<Vec<f32>> = weights.iter().map(|w| vec![0f32; m * w.n]).collect();
        let mut tasks = Vec::new();
        for (w, out) in weights.iter().zip(transposed.iter_mut()) {
            let bytes_per_row = w.data.len() / w.n.max(1);
            // Enough rows per task that thread hand-offs stay small next to the work.
            // Dense rows take more per task, so the kernel's prefetch of
            // the next rows covers most of them (a multiple of its 4-row block).
            let dense = matches!(w.dtype, GgmlDType::F32 | GgmlDType::BF16 | GgmlDType::F16);
            let task_bytes = if dense { 65536 } else { 16384 };
            // Repacked Q4_0 goes in whole tiles of eight rows.
            let unit = if w.tiled { 8 } else { 4 };
            let rows_per_task =
                (task_bytes / bytes_per_row.max(1)).clamp(8, w.n.max(8)) / unit * unit;
            for (o, d) in out
                .chunks_mut(rows_per_task * m)
                .zip(w.data.chunks(rows_per_task * bytes_per_row))
            {
                tasks.push((w.dtype, w.tiled, d, bytes_per_row, o));
            }
        }
        tasks
            .into_par_iter()
            .for_each(|(dtype, tiled, d, bytes_per_row, o)| match &int8_rows {
                Some(q) if tiled => int8::q4_0x8::tiles(d, q.get(dtype), o),
                Some(q) if int8::supported(dtype) => {
                    int8::rows(dtype, d, bytes_per_row, q.get(dtype), o)
                }
                _ => {
                    assert!(!tiled, "repacked Q4_0 weights take 8-bit activations");
                    rows(dtype, d, bytes_per_row, xs, &xsums, o)
                }
            });
        for ((w, out), t) in weights.iter().zip(outs.iter_mut()).zip(&transposed) {
            for (j, column) in t.chunks_exact(m).enumerate() {
                for (r, &v) in column.iter().enumerate() {
                    out[(r0 + r) * w.n + j] = v;
                }
            }
        }
    }
    outs
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{QStorage, QTensor};
    use candle_core::{Device, Tensor};

    #[test]
    fn half_bits_converts_every_finite_f16() {
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            if h.is_finite() {
                assert_eq!(half_bits(bits), h.to_f32(), "{bits:#x}");
            }
        }
    }

    #[test]
    fn gemv_matches_the_dequantized_weights_product() {
        let (n, k) = (37, 512);
        let w: Vec<f32> = (0..n * k)
            .map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * 0.3)
            .collect();
        // More rows than one pass takes, so the chunking is covered too.
        let m = MAX_ROWS + 2;
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8 + (i / k) as f32 * 0.01)
            .collect();
        let dense = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        for dtype in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
            GgmlDType::F32,
            GgmlDType::BF16,
            GgmlDType::F16,
        ] {
            let q = QTensor::quantize(&dense, dtype).unwrap();
            let deq = q.dequantize(&Device::Cpu).unwrap();
            let xs = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
            let want = xs
                .matmul(&deq.t().unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let data = q.data().unwrap();
            assert_eq!(
                data.len(),
                n * k / block_weights(dtype) * block_bytes(dtype).unwrap()
            );
            let weight = GemvWeight::rows(dtype, &data, n);
            let got = gemv_many(&[weight], k, &x).pop().unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-4 * b.abs().max(1.0),
                    "{dtype:?}: {a} vs {b}"
                );
            }
            // A row's product does not depend on the rows batched with it.
            for (r, batched) in got.chunks_exact(n).enumerate() {
                let weight = GemvWeight::rows(dtype, &data, n);
                let alone = gemv_many(&[weight], k, &x[r * k..(r + 1) * k])
                    .pop()
                    .unwrap();
                assert_eq!(batched, &alone[..], "{dtype:?}: row {r} batched vs alone");
            }
            // The portable loop, as CPUs without AVX2/F16C run it.
            let xsums: Vec<f32> = x[..k].chunks_exact(QK).map(|c| c.iter().sum()).collect();
            let mut portable = vec![0f32; n];
            rows_kernel(
                dtype,
                &data,
                data.len() / n,
                &x[..k],
                &xsums,
                &mut portable,
                &half_bits,
            );
            for (a, b) in portable.iter().zip(&want[..n]) {
                assert!(
                    (a - b).abs() < 1e-4 * b.abs().max(1.0),
                    "{dtype:?} portable: {a} vs {b}"
                );
            }
            // Round trip through raw bytes, as the model loader stores them.
            let storage =
                QStorage::from_data(std::borrow::Cow::Borrowed(&data), &Device::Cpu, dtype)
                    .unwrap();
            assert_eq!(QTensor::new(storage, (n, k)).unwrap().dtype(), dtype);
        }
    }
}
