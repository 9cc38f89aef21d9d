//! The bf16 case of the packed projections (see packed_gemm): weights packed
//! once, at load, into column panels of bf16 pairs and multiplied with
//! AVX512-BF16's `vdpbf16ps`, which takes two steps of `k` for 16 columns per
//! instruction (twice the multiply-adds of an f32 FMA) and sums in f32.
//!
//! Why: a bf16 model's projections went through candle's generic bf16 GEMM,
//! several times slower than PyTorch's oneDNN on the same CPU. As in f32, each
//! output `(r, c)` is one chain over `k` in order (a pair per step, in one
//! lane), so a row's value does not depend on the rows sharing its pass: a
//! decode step and a teacher-forced pass compute the same bits.
//!
//! Layout: panel `p` holds output columns `p * NR .. p * NR + NR` as
//! `[k / 2][NR]` words, each the pair `(w[c][2i], w[c][2i + 1])` as bf16 bits
//! (low half, high half); an odd `k` is padded with a zero.

use rayon::prelude::*;

use super::panels::{MR, NR};

/// Whether this CPU runs `vdpbf16ps` (AVX-512F and AVX512-BF16); elsewhere
/// the pairs are widened to f32 for the same products.
pub fn available() -> bool {
    super::simd::has_avx512_bf16()
}

/// Words per panel row: `k` in pairs.
pub(super) fn pair_count(k: usize) -> usize {
    k.div_ceil(2)
}

/// An f32 as bf16 bits, rounded to nearest even as candle's (and PyTorch's)
/// conversion does: exact for values that already are bf16.
pub(super) fn bf16_bits(v: f32) -> u16 {
    half::bf16::from_f32(v).to_bits()
}

pub(super) fn widen(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// Writes row-major rows `w` (`n` of `k`, bf16 bits) into zeroed pair panels,
/// in parallel.
pub(super) fn fill_pair_panels(w: &[u16], n: usize, k: usize, panels: &mut [u32]) {
    let k2 = pair_count(k);
    panels
        .par_chunks_mut(k2 * NR)
        .enumerate()
        .for_each(|(p, panel)| {
            let cols = NR.min(n.saturating_sub(p * NR));
            for c in 0..cols {
                let row = &w[(p * NR + c) * k..(p * NR + c + 1) * k];
                for (i, pair) in row.chunks(2).enumerate() {
                    let hi = pair.get(1).map_or(0, |&b| b as u32);
                    panel[i * NR + c] = pair[0] as u32 | (hi << 16);
                }
            }
        });
}

/// Weight row `j` of pair panels, widened to f32 (as a token embedding looks it up).
pub(super) fn row(panels: &[u32], k: usize, j: usize) -> Vec<f32> {
    let k2 = pair_count(k);
    let (p, c) = (j / NR, j % NR);
    let panel = &panels[p * k2 * NR..(p + 1) * k2 * NR];
    (0..k)
        .map(|i| {
            let word = panel[(i / 2) * NR + c];
            widen(if i % 2 == 0 {
                word as u16
            } else {
                (word >> 16) as u16
            })
        })
        .collect()
}

/// Activation rows `[m, k]` as bf16 pairs (`k / 2` words a row), in the
/// kernels' order (panels::interleave_rows), in parallel.
pub(super) fn activation_pairs(x: &[f32], m: usize, k: usize) -> Vec<u32> {
    super::panels::interleave_rows_with(m, pair_count(k), |r, out| {
        row_pairs(&x[r * k..(r + 1) * k], out)
    })
}

/// [`bf16_bits`] without a branch, so a row of them vectorises: rounds to
/// nearest even on the 16 bits dropped, and keeps a NaN a quiet NaN.
#[inline(always)]
fn round_bits(bits: u32) -> u32 {
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    let nan = (bits & 0x7fff_ffff) > 0x7f80_0000;
    if nan {
        (bits >> 16) | 0x40
    } else {
        rounded
    }
}

#[inline(always)]
fn row_pairs_kernel(row: &[f32], out: &mut [u32]) {
    let pairs = row.chunks_exact(2);
    let tail = pairs.remainder().first().map(|v| round_bits(v.to_bits()));
    for (o, pair) in out.iter_mut().zip(pairs) {
        *o = round_bits(pair[0].to_bits()) | (round_bits(pair[1].to_bits()) << 16);
    }
    if let (Some(t), Some(last)) = (tail, out.last_mut()) {
        *last = t;
    }
}

crate::widest!(
    /// One activation row as bf16 pairs (an odd last value paired with zero).
    fn row_pairs(row: &[f32], out: &mut [u32]) = row_pairs_kernel
);

/// One pair panel against every row of the activation pairs `x` (`[m, k2]`
/// as [`activation_pairs`] lays them out): row `r`'s `cols` outputs go to
/// `out + r * ld`.
///
/// # Safety
/// `out + r * ld + c` must be writable for every `r < m`, `c < cols`.
#[allow(unsafe_code)]
pub(super) unsafe fn panel_product(
    x: &[u32],
    m: usize,
    k2: usize,
    panel: &[u32],
    out: *mut f32,
    ld: usize,
    cols: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        let mut r0 = 0;
        while r0 < m {
            let rows = MR.min(m - r0);
            let xs = x[r0 * k2..].as_ptr();
            let o = out.add(r0 * ld);
            macro_rules! run {
                ($($r:literal)*) => {
                    match rows {
                        $($r => avx512bf16::block::<$r>(xs, k2, panel.as_ptr(), o, ld, cols),)*
                        _ => avx512bf16::block::<MR>(xs, k2, panel.as_ptr(), o, ld, cols),
                    }
                };
            }
            run!(1 2 3 4 5 6 7 8 9 10 11);
            r0 += rows;
        }
        return;
    }
    // Elsewhere the pairs are widened to f32 and multiplied in the same
    // order, so every CPU computes the same bits.
    let mut r0 = 0;
    while r0 < m {
        // A block of up to MR rows, in register blocks of up to WIDENING_ROWS.
        let stride = MR.min(m - r0);
        let block = &x[r0 * k2..(r0 + stride) * k2];
        let mut s0 = 0;
        while s0 < stride {
            let rows = WIDENING_ROWS.min(stride - s0);
            let xs = &block[s0..];
            let mut acc = [[0f32; NR]; WIDENING_ROWS];
            macro_rules! run {
                ($($r:literal)*) => {
                    match rows {
                        $($r => {
                            let mut part = [[0f32; NR]; $r];
                            widening::<$r>(xs, stride, k2, panel, &mut part);
                            acc[..$r].copy_from_slice(&part);
                        })*
                        _ => widening::<WIDENING_ROWS>(xs, stride, k2, panel, &mut acc),
                    }
                };
            }
            run!(1 2 3);
            for (r, row) in acc.iter().take(rows).enumerate() {
                for (c, &v) in row.iter().take(cols).enumerate() {
                    *out.add((r0 + s0 + r) * ld + c) = v;
                }
            }
            s0 += rows;
        }
        r0 += stride;
    }
}

/// Activation rows per block of the widening kernel.
const WIDENING_ROWS: usize = 4;

/// `R` rows of activation pairs against one pair panel, widened to f32, in
/// the order Intel defines `vdpbf16ps`: per pair, the odd element's product
/// added first, then the even one's. A product of two bf16 values is exact in
/// f32 (16 significant bits of 24; normal values), so adding it rounds once
/// whether the add is fused (`FUSED`: one FMA where the CPU has them, half
/// the instructions) or not (the baseline build, where `mul_add` would be a
/// library call): both equal the instruction bit for bit. Written so the
/// compiler vectorises across the panel's columns; compiled for the widest
/// vectors this CPU has.
#[inline(always)]
fn widening_kernel<const R: usize, const FUSED: bool>(
    x: &[u32],
    stride: usize,
    k2: usize,
    panel: &[u32],
    acc: &mut [[f32; NR]; R],
) {
    for (i, words) in panel.chunks_exact(NR).take(k2).enumerate() {
        let words: &[u32; NR] = words.try_into().unwrap_or(&[0; NR]);
        let (mut odd, mut even) = ([0f32; NR], [0f32; NR]);
        for c in 0..NR {
            odd[c] = f32::from_bits(words[c] & 0xffff_0000);
            even[c] = f32::from_bits(words[c] << 16);
        }
        for (r, a) in acc.iter_mut().enumerate() {
            let xw = x[i * stride + r];
            let (xo, xe) = (f32::from_bits(xw & 0xffff_0000), f32::from_bits(xw << 16));
            for c in 0..NR {
                if FUSED {
                    a[c] = xo.mul_add(odd[c], a[c]);
                    a[c] = xe.mul_add(even[c], a[c]);
                } else {
                    a[c] += xo * odd[c];
                    a[c] += xe * even[c];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn widening_avx512<const R: usize>(
    x: &[u32],
    stride: usize,
    k2: usize,
    panel: &[u32],
    acc: &mut [[f32; NR]; R],
) {
    widening_kernel::<R, true>(x, stride, k2, panel, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn widening_avx2<const R: usize>(
    x: &[u32],
    stride: usize,
    k2: usize,
    panel: &[u32],
    acc: &mut [[f32; NR]; R],
) {
    widening_kernel::<R, true>(x, stride, k2, panel, acc)
}

/// The widening kernel for the widest vectors the CPU has (under ALIGNTDS_CPU).
#[allow(unsafe_code)]
fn widening<const R: usize>(
    x: &[u32],
    stride: usize,
    k2: usize,
    panel: &[u32],
    acc: &mut [[f32; NR]; R],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::has_avx512() {
            // SAFETY: AVX-512F, AVX2 and FMA were detected (has_avx512 checks them).
            return unsafe { widening_avx512(x, stride, k2, panel, acc) };
        }
        if super::simd::has_avx2() {
            // SAFETY: AVX2 and FMA were detected.
            return unsafe { widening_avx2(x, stride, k2, panel, acc) };
        }
    }
    widening_kernel::<R, false>(x, stride, k2, panel, acc)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512bf16 {
    use std::arch::x86_64::*;

    use super::NR;

    /// `R` rows of interleaved activation pairs (`[k2][R]`) against one pair
    /// panel (`[k2][NR]`): `cols` outputs per row to `out + r * ld`, each one
    /// `vdpbf16ps` chain over the pairs in order.
    ///
    /// # Safety
    /// AVX-512F and AVX512-BF16 must be available; `x` must hold `k2 * R`
    /// words, the panel `k2 * NR`, and `out + r * ld + c` be writable for
    /// `c < cols`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block<const R: usize>(
        x: *const u32,
        k2: usize,
        panel: *const u32,
        out: *mut f32,
        ld: usize,
        cols: usize,
    ) {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        for i in 0..k2 {
            let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(i * NR).cast()));
            let w1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(panel.add(i * NR + 16).cast()));
            for r in 0..R {
                let xv: __m512bh = std::mem::transmute(_mm512_set1_epi32(*x.add(i * R + r) as i32));
                lo[r] = _mm512_dpbf16_ps(lo[r], xv, w0);
                hi[r] = _mm512_dpbf16_ps(hi[r], xv, w1);
            }
        }
        // SAFETY: as this function's own contract.
        super::super::panels::avx512::store::<R>(&lo, &hi, out, ld, cols);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Values that are bf16 already (a bf16 model's weights and activations).
    pub(in crate::kernels) fn bf16_values(count: usize, seed: usize) -> Vec<f32> {
        (0..count)
            .map(|i| {
                widen(bf16_bits(
                    (((i * 7919 + seed) % 1000) as f32 / 500.0 - 1.0) * 0.7,
                ))
            })
            .collect()
    }

    #[test]
    fn every_path_computes_the_instructions_order_to_the_bit() {
        let (n, k, m) = (70, 130, 29);
        let (w, x) = (bf16_values(n * k, 3), bf16_values(m * k, 4));
        let bits: Vec<u16> = w.iter().map(|&v| bf16_bits(v)).collect();
        let k2 = pair_count(k);
        let mut panels = vec![0u32; n.div_ceil(NR) * k2 * NR];
        fill_pair_panels(&bits, n, k, &mut panels);
        // Row-major pairs for the definition (one row's layout is its pairs).
        let pairs: Vec<u32> = (0..m)
            .flat_map(|r| activation_pairs(&x[r * k..(r + 1) * k], 1, k))
            .collect();
        // The definition: per pair, odd product then even product, f32 adds.
        let mut want = vec![0f32; m * n];
        for (p, panel) in panels.chunks(k2 * NR).enumerate() {
            let cols = NR.min(n - p * NR);
            for r in 0..m {
                for c in 0..cols {
                    let mut acc = 0f32;
                    for i in 0..k2 {
                        let (xw, ww) = (pairs[r * k2 + i], panel[i * NR + c]);
                        acc += widen((xw >> 16) as u16) * widen((ww >> 16) as u16);
                        acc += widen(xw as u16) * widen(ww as u16);
                    }
                    want[r * n + p * NR + c] = acc;
                }
            }
        }
        let same = |got: &[f32], want: &[f32], path: &str| {
            for (i, (a, b)) in got.iter().zip(want).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{path}, output {i}: {a} vs {b}");
            }
        };
        // The path this CPU takes (vdpbf16ps where it has AVX512-BF16).
        let path = if available() { "vdpbf16ps" } else { "widening" };
        eprintln!("packed bf16 on this CPU: {path}");
        let mut got = vec![0f32; m * n];
        let interleaved = activation_pairs(&x, m, k);
        for (p, panel) in panels.chunks(k2 * NR).enumerate() {
            let cols = NR.min(n - p * NR);
            // SAFETY: `got` holds m rows of n, and this panel writes columns
            // p * NR .. p * NR + cols of each.
            #[allow(unsafe_code)]
            unsafe {
                panel_product(
                    &interleaved,
                    m,
                    k2,
                    panel,
                    got.as_mut_ptr().add(p * NR),
                    n,
                    cols,
                )
            };
        }
        same(&got, &want, path);
        // The widening kernel, dispatched and as the baseline build compiles it.
        let panel = &panels[..k2 * NR];
        let rows = activation_pairs(&x[..WIDENING_ROWS * k], WIDENING_ROWS, k);
        let (mut dispatched, mut baseline) =
            ([[0f32; NR]; WIDENING_ROWS], [[0f32; NR]; WIDENING_ROWS]);
        widening(&rows, WIDENING_ROWS, k2, panel, &mut dispatched);
        widening_kernel::<WIDENING_ROWS, false>(&rows, WIDENING_ROWS, k2, panel, &mut baseline);
        for r in 0..WIDENING_ROWS {
            same(
                &dispatched[r][..NR.min(n)],
                &want[r * n..r * n + NR.min(n)],
                "widening",
            );
            same(
                &baseline[r][..NR.min(n)],
                &want[r * n..r * n + NR.min(n)],
                "widening, baseline",
            );
        }
    }

    #[test]
    fn activations_round_to_bf16_as_the_half_crate_does() {
        let mut values: Vec<f32> = (0..20_000)
            .map(|i| f32::from_bits((i as u32).wrapping_mul(2_654_435_761)))
            .collect();
        values.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40,
            f32::from_bits(0x3f80_8000), // a tie, rounds to even (down)
            f32::from_bits(0x3f81_8000), // a tie, rounds to even (up)
            f32::from_bits(0x7f7f_ffff), // rounds up to infinity
        ]);
        assert_eq!(
            values.len() % 2,
            1,
            "an odd length: the last value pairs with zero"
        );
        let pairs = activation_pairs(&values, 1, values.len());
        for (i, &v) in values.iter().enumerate() {
            let word = pairs[i / 2];
            let got = if i % 2 == 0 {
                word as u16
            } else {
                (word >> 16) as u16
            };
            assert_eq!(got, bf16_bits(v), "{v:e} ({:#x})", v.to_bits());
        }
        assert_eq!(pairs.last().map(|w| w >> 16), Some(0));
    }
}
