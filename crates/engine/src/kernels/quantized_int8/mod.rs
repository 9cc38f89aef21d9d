//! Integer dot products of GGUF weight blocks with activations quantized to
//! 8 bits, llama.cpp's arithmetic for `--dtype q8`: each 32-value block of an
//! activation row becomes a scale and 32 signed bytes (as ggml's
//! `quantize_row_q8_0`), and a weight chunk's dot product with it is an exact
//! integer sum times the scales. One byte per weight and per activation
//! instead of an f32 widening makes a decode step bound by reading the
//! weights, not by arithmetic (see quantized_gemv for the exact path).
//!
//! Q8_0 and Q4_0 blocks are 32 weights; a Q6_K or Q4_K super-block is eight
//! chunks of 32. As in llama.cpp (each type's `vec_dot_type`), activations
//! meet Q8_0 and Q4_0 weights as Q8_0 blocks (a scale per 32 values) and the
//! K-quants as Q8_K blocks (one f32 scale per 256 values, repeated here for
//! each of its eight 32-value blocks so every kernel reads one layout):
//! [`Scheme`] says which, and a K-quant file's `q8` logits are llama.cpp's.
//!
//! The float arithmetic has one fixed order, so every path gives the same
//! bits: chunk `b`'s exact integer sum `s_b` (and Q4_K's min sum `m_b`) is
//! scaled as `t = (dw_b * dx_b) * s_b` (Q4_K: `t - (dmin_b * dx_b) * m_b`),
//! added into lane `b % 8` of eight f32 lanes, and the row's value is the
//! lanes summed as `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))`. AVX-512 VNNI
//! (`vpdpbusd`), AVX2 (`vpmaddubsw`) and the portable loop differ only in how
//! they get the integer sums.

use candle_core::quantized::GgmlDType;

use super::ggml_blocks::{half_bits, q4k_scale_min};

/// Values per activation block and per weight chunk.
pub const QK: usize = 32;
/// Float lanes of the fixed summation order (chunks go round-robin).
const LANES: usize = 8;

/// Activation rows quantized per block of [`QK`]: block `i` of row `r` is
/// `q[r * blocks + i]` (32 signed bytes, `q * d` approximating the values)
/// with its scale `d` and the sums of its first and last 16 bytes (the
/// weights' offsets and mins are taken off through them).
#[derive(Debug, Clone)]
pub struct QuantizedRows {
    scheme: Scheme,
    blocks: usize,
    q: Vec<Bytes32>,
    d: Vec<f32>,
    lo: Vec<i32>,
    hi: Vec<i32>,
    /// `lo + hi`, the whole block's sum (stored: the GEMM broadcasts it
    /// straight from memory).
    sum: Vec<i32>,
}

/// 32 bytes, aligned for one vector load.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Bytes32([i8; QK]);

impl QuantizedRows {
    /// Rows quantized as `dtype`'s weights take them (see [`Scheme`]).
    pub fn for_weight(dtype: GgmlDType, x: &[f32], k: usize) -> Self {
        Self::with_scheme(x, k, Scheme::of(dtype))
    }

    /// Quantizes rows of `k` values by `scheme`: Q8_0 (`k` a multiple of
    /// [`QK`]) as ggml's AVX code quantizes a row for Q8_0, per block
    /// `m = max|x|`, `q = round(x * 127 / m)` (ties to even), the scale
    /// `m / 127` rounded to f16; Q8_K (`k` a multiple of 256) as ggml's
    /// `quantize_row_q8_K_ref` (see `quantize_super_blocks_kernel`).
    pub fn with_scheme(x: &[f32], k: usize, scheme: Scheme) -> Self {
        use rayon::prelude::*;
        assert!(
            scheme == Scheme::Q8_0 || k.is_multiple_of(LANES * QK),
            "Q8_K activations need rows of a multiple of 256 values, not {k}"
        );
        let blocks = k / QK;
        let n = x.len() / QK;
        let mut rows = Self {
            scheme,
            blocks,
            q: vec![Bytes32([0; QK]); n],
            d: vec![0.0; n],
            lo: vec![0; n],
            hi: vec![0; n],
            sum: vec![0; n],
        };
        // Rows in parallel, a few at a time: quantizing a pass's rows on one
        // thread took a fifth of its products' time.
        let per = (8 * blocks).max(1);
        x.par_chunks(per * QK)
            .zip(rows.q.par_chunks_mut(per))
            .zip(rows.d.par_chunks_mut(per))
            .zip(rows.lo.par_chunks_mut(per))
            .zip(rows.hi.par_chunks_mut(per))
            .zip(rows.sum.par_chunks_mut(per))
            .for_each(|(((((x, q), d), lo), hi), sum)| match scheme {
                Scheme::Q8_0 => quantize_blocks(x, q, d, (lo, hi, sum)),
                Scheme::Q8K => quantize_super_blocks(x, q, d, (lo, hi, sum)),
            });
        rows
    }

    fn rows(&self) -> usize {
        self.d.len() / self.blocks.max(1)
    }
}

/// The same activation rows quantized each way the weights meeting them take
/// (a K-quant file's projections may mix K-quants with Q8_0 or Q4_0).
#[derive(Debug, Clone)]
pub struct RowsByScheme {
    q8_0: Option<QuantizedRows>,
    q8k: Option<QuantizedRows>,
}

impl RowsByScheme {
    /// Rows of `k` values quantized for every scheme some of `dtypes` takes.
    pub fn new(x: &[f32], k: usize, dtypes: impl IntoIterator<Item = GgmlDType>) -> Self {
        let schemes: Vec<Scheme> = dtypes.into_iter().map(Scheme::of).collect();
        let make = |scheme| {
            schemes
                .contains(&scheme)
                .then(|| QuantizedRows::with_scheme(x, k, scheme))
        };
        Self {
            q8_0: make(Scheme::Q8_0),
            q8k: make(Scheme::Q8K),
        }
    }

    /// The rows as `dtype` takes them; `dtype` must be among those given to [`Self::new`].
    pub fn get(&self, dtype: GgmlDType) -> &QuantizedRows {
        let rows = match Scheme::of(dtype) {
            Scheme::Q8_0 => &self.q8_0,
            Scheme::Q8K => &self.q8k,
        };
        rows.as_ref()
            .unwrap_or_else(|| panic!("activation rows were not quantized for {dtype:?}"))
    }
}

/// Blocks of 32 values: per block `m = max|x|`, `q = round(x * 127 / m)`
/// (ties to even), the scale `m / 127` rounded to f16, the halves' sums.
/// Compiled for the widest vectors (a rounding instruction, not a library
/// call per value).
#[inline(always)]
fn quantize_blocks_kernel(
    x: &[f32],
    q: &mut [Bytes32],
    d: &mut [f32],
    (lo, hi, sum): (&mut [i32], &mut [i32], &mut [i32]),
) {
    for (i, block) in x.chunks_exact(QK).enumerate() {
        // max|x| as the largest magnitude's bits (the same value for finite
        // and infinite inputs; an integer maximum vectorizes, f32::max does not).
        let bits = block
            .iter()
            .fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
        let amax = f32::from_bits(bits);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let qi = &mut q[i].0;
        for (q, &v) in qi.iter_mut().zip(block) {
            // |v * id| <= 127 up to rounding; the clamp keeps -128 out.
            *q = (v * id).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
        (lo[i], hi[i], sum[i]) = half_sums(qi);
        d[i] = half::f16::from_f32(amax / 127.0).to_f32();
    }
}

crate::widest!(fn quantize_blocks(
    x: &[f32],
    q: &mut [Bytes32],
    d: &mut [f32],
    sums: (&mut [i32], &mut [i32], &mut [i32]),
) = quantize_blocks_kernel);

/// A block's sums of its first and last 16 bytes, and of all 32.
#[inline(always)]
fn half_sums(q: &[i8; QK]) -> (i32, i32, i32) {
    let half = |h: &[i8]| h.iter().map(|&v| v as i32).sum::<i32>();
    let (lo, hi) = (half(&q[..16]), half(&q[16..]));
    (lo, hi, lo + hi)
}

/// Super-blocks of 256 values as ggml's `quantize_row_q8_K_ref`: the
/// first value of largest magnitude `max` (signed), `iscale = -127 / max`,
/// `q = min(127, round(iscale * x))` (ties to even, ggml's `nearest_int`),
/// the scale `1 / iscale` kept in f32 for all eight 32-value blocks.
#[inline(always)]
fn quantize_super_blocks_kernel(
    x: &[f32],
    q: &mut [Bytes32],
    d: &mut [f32],
    (lo, hi, sum): (&mut [i32], &mut [i32], &mut [i32]),
) {
    const SUPER: usize = LANES * QK;
    for (s, block) in x.chunks_exact(SUPER).enumerate() {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in block {
            if v.abs() > amax {
                (amax, max) = (v.abs(), v);
            }
        }
        let iscale = if amax != 0.0 { -127.0 / max } else { 0.0 };
        let scale = if amax != 0.0 { 1.0 / iscale } else { 0.0 };
        for (c, values) in block.chunks_exact(QK).enumerate() {
            let i = s * LANES + c;
            let qi = &mut q[i].0;
            for (q, &v) in qi.iter_mut().zip(values) {
                *q = (iscale * v).round_ties_even().min(127.0) as i8;
            }
            (lo[i], hi[i], sum[i]) = half_sums(qi);
            d[i] = scale;
        }
    }
}

crate::widest!(fn quantize_super_blocks(
    x: &[f32],
    q: &mut [Bytes32],
    d: &mut [f32],
    sums: (&mut [i32], &mut [i32], &mut [i32]),
) = quantize_super_blocks_kernel);

/// How activation rows are quantized for a weight type: llama.cpp's
/// `vec_dot_type` of that type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A scale per 32 values, rounded to f16 (Q8_0 and Q4_0 weights).
    Q8_0,
    /// One f32 scale per 256 values (the K-quants).
    Q8K,
}

impl Scheme {
    pub fn of(dtype: GgmlDType) -> Self {
        match dtype {
            GgmlDType::Q6K | GgmlDType::Q4K => Self::Q8K,
            _ => Self::Q8_0,
        }
    }
}

/// The weight types with an integer kernel here.
pub fn supported(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q8_0 | GgmlDType::Q4_0 | GgmlDType::Q6K | GgmlDType::Q4K
    )
}

/// Bytes of eight chunks (one group) of a supported type.
fn group_bytes(dtype: GgmlDType) -> usize {
    match dtype {
        GgmlDType::Q8_0 => 8 * 34,
        GgmlDType::Q4_0 => 8 * 18,
        GgmlDType::Q6K => 210,
        _ => 144,
    }
}

/// Bytes of one weight row of `k` values.
fn row_bytes(dtype: GgmlDType, k: usize) -> usize {
    k / (8 * QK) * group_bytes(dtype)
        + match dtype {
            GgmlDType::Q8_0 => (k / QK % 8) * 34,
            GgmlDType::Q4_0 => (k / QK % 8) * 18,
            _ => 0,
        }
}

/// Chunk `c` (0..8) of a K-quant super-block `sb` as its 32 unsigned values,
/// with the 16-value scales (Q6_K; Q4_K's one scale twice) and Q4_K's min.
#[inline(always)]
fn k_chunk(dtype: GgmlDType, sb: &[u8], c: usize) -> ([u8; QK], [i32; 2], i32) {
    let mut v = [0u8; QK];
    if dtype == GgmlDType::Q6K {
        // 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 signed scales, d.
        let (n, quarter) = (c / 4, c % 4);
        let ql = &sb[n * 64 + 32 * (quarter % 2)..][..QK];
        let qh = &sb[128 + n * 32..][..QK];
        let (low_shift, high_shift) = (4 * (quarter / 2), 2 * quarter);
        for l in 0..QK {
            v[l] = ((ql[l] >> low_shift) & 15) | (((qh[l] >> high_shift) & 3) << 4);
        }
        let s = |i: usize| sb[192 + n * 8 + quarter * 2 + i] as i8 as i32;
        (v, [s(0), s(1)], 0)
    } else {
        // Q4_K: d, dmin, 12 bytes of 6-bit (scale, min) pairs, nibbles in 64-value pairs.
        let (scale, min) = q4k_scale_min(&sb[4..16], c);
        let qs = &sb[16 + (c / 2) * 32..][..QK];
        for l in 0..QK {
            v[l] = (qs[l] >> (4 * (c % 2))) & 15;
        }
        (v, [scale as i32; 2], min as i32)
    }
}

/// Chunk `b` of a weight row unpacked: its 32 values as unsigned bytes
/// (Q8_0's signed ones offset by 128, Q4_0's and Q6_K's stored offsets kept:
/// [`Chunk::offset`] says what to take off per value), its scales, and the
/// K-quants' integer multipliers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk {
    pub v: [u8; QK],
    pub dw: f32,
    /// Q4_K: the mins' scale.
    pub dmin: f32,
    /// Q6_K: the scales of the first and last 16 values; Q4_K: the chunk's
    /// scale and min.
    pub a: i32,
    pub b: i32,
}

impl Chunk {
    /// What each value carries above the signed value it stands for.
    pub fn offset(dtype: GgmlDType) -> i32 {
        match dtype {
            GgmlDType::Q8_0 => 128,
            GgmlDType::Q4_0 => 8,
            GgmlDType::Q6K => 32,
            _ => 0,
        }
    }
}

#[inline(always)]
pub(super) fn chunk(dtype: GgmlDType, row: &[u8], b: usize) -> Chunk {
    let half_at =
        |bytes: &[u8], at: usize| half_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
    let mut c = Chunk {
        v: [0; QK],
        dw: 0.0,
        dmin: 0.0,
        a: 0,
        b: 0,
    };
    match dtype {
        GgmlDType::Q8_0 => {
            let w = &row[b * 34..][..34];
            for l in 0..QK {
                c.v[l] = w[2 + l] ^ 0x80;
            }
            c.dw = half_at(w, 0);
        }
        GgmlDType::Q4_0 => {
            let w = &row[b * 18..][..18];
            for j in 0..16 {
                c.v[j] = w[2 + j] & 15;
                c.v[j + 16] = w[2 + j] >> 4;
            }
            c.dw = half_at(w, 0);
        }
        GgmlDType::Q6K => {
            let sb = &row[(b / 8) * 210..][..210];
            let (v, [a, b_], _) = k_chunk(dtype, sb, b % 8);
            (c.v, c.a, c.b, c.dw) = (v, a, b_, half_at(sb, 208));
        }
        _ => {
            let sb = &row[(b / 8) * 144..][..144];
            let (v, [scale, _], min) = k_chunk(dtype, sb, b % 8);
            (c.v, c.a, c.b) = (v, scale, min);
            (c.dw, c.dmin) = (half_at(sb, 0), half_at(sb, 2));
        }
    }
    c
}

/// A chunk's exact integer dot product from its two halves' raw sums
/// (`d1`, `d2`: the unpacked bytes against the activations' first and last
/// 16 values) and the activations' half-sums: `(s, m)` with `m` Q4_K's min
/// sum. The one definition every path's integers follow.
#[inline(always)]
pub(super) fn chunk_sums(
    dtype: GgmlDType,
    c: &Chunk,
    (d1, d2): (i32, i32),
    (lo, hi): (i32, i32),
) -> (i32, i32) {
    let off = Chunk::offset(dtype);
    match dtype {
        GgmlDType::Q6K => (c.a * (d1 - off * lo) + c.b * (d2 - off * hi), 0),
        GgmlDType::Q4K => (c.a * (d1 + d2), c.b * (lo + hi)),
        _ => (d1 + d2 - off * (lo + hi), 0),
    }
}

/// Chunk `b` of a weight row against activation block `i`, the plain
/// definition: `(dw, dmin, s, m)` with `s` the exact integer dot product
/// (offsets and per-16 scales applied) and `m` Q4_K's min sum.
#[inline(always)]
fn chunk_terms(
    dtype: GgmlDType,
    row: &[u8],
    b: usize,
    x: &QuantizedRows,
    i: usize,
) -> (f32, f32, i32, i32) {
    let q = &x.q[i].0;
    let c = chunk(dtype, row, b);
    let dot =
        |range: std::ops::Range<usize>| -> i32 { range.map(|l| c.v[l] as i32 * q[l] as i32).sum() };
    let (s, m) = chunk_sums(dtype, &c, (dot(0..16), dot(16..QK)), (x.lo[i], x.hi[i]));
    (c.dw, c.dmin, s, m)
}

#[inline(always)]
fn reduce(l: &[f32; LANES]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// Chunks `first..` of one weight row against row `r`, one at a time, into
/// `lanes` (the portable loop, and the vector paths' tail after whole groups).
#[inline(always)]
fn chunks_plain(
    dtype: GgmlDType,
    row: &[u8],
    x: &QuantizedRows,
    r: usize,
    first: usize,
    lanes: &mut [f32; LANES],
) {
    for b in first..x.blocks {
        let i = r * x.blocks + b;
        let (dw, dmin, s, m) = chunk_terms(dtype, row, b, x, i);
        let mut t = (dw * x.d[i]) * s as f32;
        if dtype == GgmlDType::Q4K {
            t -= (dmin * x.d[i]) * m as f32;
        }
        lanes[b % LANES] += t;
    }
}

/// Which path [`rows`] takes (for tests and the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    Vnni,
    Avx2,
    Portable,
}

/// The widest path this CPU runs under `ALIGNTDS_CPU`.
pub fn path() -> Path {
    if super::simd::has_avx512_vnni() {
        Path::Vnni
    } else if super::simd::has_avx2() {
        Path::Avx2
    } else {
        Path::Portable
    }
}

/// Most activation rows one call takes (a decode step's batch).
pub const MAX_ROWS: usize = 32;

/// `out[j * m + r] = W_j · x_r` for the weight rows in `rows` (`bytes_per_row`
/// each) and the `m` quantized rows `x`: the layout of quantized_gemv's tasks.
pub fn rows(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    x: &QuantizedRows,
    out: &mut [f32],
) {
    rows_with(path(), dtype, rows, bytes_per_row, x, out)
}

/// [`rows`] through a given path; one the CPU lacks falls back to the portable loop.
#[allow(unsafe_code)]
pub fn rows_with(
    path: Path,
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    x: &QuantizedRows,
    out: &mut [f32],
) {
    assert!(supported(dtype), "no integer kernel for {dtype:?}");
    let m = x.rows();
    assert_eq!(x.scheme, Scheme::of(dtype), "activations for {dtype:?}");
    assert!(
        m <= MAX_ROWS && bytes_per_row == row_bytes(dtype, x.blocks * QK),
        "{m} rows of {} blocks against {dtype:?} rows of {bytes_per_row} bytes",
        x.blocks
    );
    // The path this CPU can take, decided once for all rows.
    match path {
        // SAFETY: AVX-512 (F, BW, VL), AVX512-VNNI, AVX2 and F16C are
        // detected; every row is whole (`bytes_per_row` asserted above).
        #[cfg(target_arch = "x86_64")]
        Path::Vnni if super::simd::has_avx512_vnni() => unsafe {
            x86::rows_vnni(dtype, rows, bytes_per_row, x, out)
        },
        // SAFETY: AVX2, FMA and F16C are detected; rows as above.
        #[cfg(target_arch = "x86_64")]
        Path::Vnni | Path::Avx2 if super::simd::has_avx2() => unsafe {
            x86::rows_avx2(dtype, rows, bytes_per_row, x, out)
        },
        _ => all_rows(dtype, rows, bytes_per_row, x, out, |_, _| 0),
    }
}

/// Every weight row against every activation row: `groups(row, lanes)` adds
/// a row's whole groups of eight chunks into each activation row's lanes and
/// returns the chunks it did; the rest, one chunk at a time, and the lanes'
/// sum are the portable loop's. Inlined into each path with `dtype` a
/// constant, so the per-type branches fold away.
#[inline(always)]
fn all_rows(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    x: &QuantizedRows,
    out: &mut [f32],
    mut groups: impl FnMut(&[u8], &mut [[f32; LANES]]) -> usize,
) {
    let m = x.rows();
    let mut lanes = [[0f32; LANES]; MAX_ROWS];
    for (j, row) in rows.chunks_exact(bytes_per_row).enumerate() {
        let lanes = &mut lanes[..m];
        lanes.fill([0.0; LANES]);
        let done = groups(row, lanes);
        for (r, l) in lanes.iter_mut().enumerate() {
            chunks_plain(dtype, row, x, r, done, l);
            out[j * m + r] = reduce(l);
        }
    }
}

mod gemm;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod gemm_x86;
pub mod q4_0x8;
mod tile;
pub use gemm::{gemm, gemm_into, gemm_is_fast, Weight, GEMM_MIN_ROWS};

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

#[cfg(test)]
mod tests;
