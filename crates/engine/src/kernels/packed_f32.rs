//! The f32 panel kernels under packed_gemm: one panel of packed weights
//! against every row of the activations, each output one fused
//! multiply-add chain over `k` in order. The AVX-512 kernel, the AVX2 + FMA
//! kernel (the typical laptop) and the portable loop compute the same bits;
//! which one runs is chosen at run time (under ALIGNTDS_CPU).

#[cfg(doc)]
use super::panels::interleave_rows;
use super::panels::{MR, NR};

/// The f32 panel kernels, widest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    Avx512,
    Avx2,
    /// The plain loop: weights are not packed where it is the only kernel
    /// (candle's GEMM is faster there); it serves tests and other CPUs.
    Portable,
}

/// The widest kernel this CPU runs.
pub(super) fn path() -> Path {
    if super::simd::has_avx512() {
        Path::Avx512
    } else if super::simd::has_avx2() {
        Path::Avx2
    } else {
        Path::Portable
    }
}

/// One panel against every row of the activations `x`, as
/// [`interleave_rows`] lays them out: row `r`'s `cols` outputs go to
/// `out + r * ld`.
///
/// # Safety
/// `out + r * ld + c` must be writable for every `r < m`, `c < cols`.
#[allow(unsafe_code)]
pub(super) unsafe fn panel_product(
    x: &[f32],
    m: usize,
    k: usize,
    panel: &[f32],
    out: *mut f32,
    ld: usize,
    cols: usize,
) {
    panel_product_on(path(), x, m, k, panel, out, ld, cols)
}

/// [`panel_product`] on the kernel `path`.
///
/// # Safety
/// As [`panel_product`], and the CPU must run `path` ([`path`] or narrower).
#[allow(unsafe_code, clippy::too_many_arguments)]
unsafe fn panel_product_on(
    path: Path,
    x: &[f32],
    m: usize,
    k: usize,
    panel: &[f32],
    out: *mut f32,
    ld: usize,
    cols: usize,
) {
    debug_assert!(x.len() >= m * k && panel.len() >= k * NR && cols <= NR);
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => {
            let mut r0 = 0;
            while r0 < m {
                let rows = MR.min(m - r0);
                let xs = x[r0 * k..].as_ptr();
                let o = out.add(r0 * ld);
                // The register block is the packing block: stride R.
                macro_rules! run {
                    ($($r:literal)*) => {
                        match rows {
                            $($r => avx512::block::<$r>(xs, k, panel.as_ptr(), o, ld, cols),)*
                            _ => avx512::block::<MR>(xs, k, panel.as_ptr(), o, ld, cols),
                        }
                    };
                }
                run!(1 2 3 4 5 6 7 8 9 10 11);
                r0 += rows;
            }
        }
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 if m == 1 => {
            // A decode step: the whole panel per block.
            avx2::block::<1, 4>(x.as_ptr(), 1, k, panel.as_ptr(), out, ld, cols);
        }
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => {
            let mut r0 = 0;
            while r0 < m {
                // A packing block of up to 12 rows, in register blocks of up to 6.
                let stride = MR.min(m - r0);
                let block = x[r0 * k..].as_ptr();
                let mut s0 = 0;
                while s0 < stride {
                    let rows = avx2::MR.min(stride - s0);
                    let xs = block.add(s0);
                    for c0 in (0..cols).step_by(16) {
                        let p = panel.as_ptr().add(c0);
                        let o = out.add((r0 + s0) * ld + c0);
                        let n = (cols - c0).min(16);
                        match rows {
                            1 => avx2::block::<1, 2>(xs, stride, k, p, o, ld, n),
                            2 => avx2::block::<2, 2>(xs, stride, k, p, o, ld, n),
                            3 => avx2::block::<3, 2>(xs, stride, k, p, o, ld, n),
                            4 => avx2::block::<4, 2>(xs, stride, k, p, o, ld, n),
                            5 => avx2::block::<5, 2>(xs, stride, k, p, o, ld, n),
                            _ => avx2::block::<{ avx2::MR }, 2>(xs, stride, k, p, o, ld, n),
                        }
                    }
                    s0 += rows;
                }
                r0 += stride;
            }
        }
        _ => {
            for r in 0..m {
                let (r0, stride) = (r / MR * MR, MR.min(m - r / MR * MR));
                let block = &x[r0 * k..(r0 + stride) * k];
                for c in 0..cols {
                    let mut acc = 0f32;
                    for i in 0..k {
                        acc = block[i * stride + r - r0].mul_add(panel[i * NR + c], acc);
                    }
                    *out.add(r * ld + c) = acc;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::*;

    use super::NR;

    /// `R` rows of packed activations (`[k][R]`) against one panel
    /// (`[k][NR]`): `cols` outputs per row to `out + r * ld`. Each output is
    /// one fused multiply-add chain over `k` in order.
    ///
    /// # Safety
    /// AVX-512F must be available; `x` must hold `k * R` values, the
    /// panel `k * NR` values, and `out + r * ld + c` be writable for `c < cols`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block<const R: usize>(
        x: *const f32,
        k: usize,
        panel: *const f32,
        out: *mut f32,
        ld: usize,
        cols: usize,
    ) {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        for i in 0..k {
            let w0 = _mm512_loadu_ps(panel.add(i * NR));
            let w1 = _mm512_loadu_ps(panel.add(i * NR + 16));
            for r in 0..R {
                let xv = _mm512_set1_ps(*x.add(i * R + r));
                lo[r] = _mm512_fmadd_ps(xv, w0, lo[r]);
                hi[r] = _mm512_fmadd_ps(xv, w1, hi[r]);
            }
        }
        super::super::panels::avx512::store::<R>(&lo, &hi, out, ld, cols);
    }
}

/// The packed kernel for AVX2 + FMA (16 registers of 8 lanes): a panel is
/// taken in two halves of 16 columns, each against up to 6 rows (12
/// accumulators, two weight vectors and a broadcast), as in BLIS's Haswell
/// 6x16 kernel. Each output is still one fused multiply-add chain over `k`
/// in order, so it equals the AVX-512 kernel bit for bit.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::NR;

    /// Activation rows per register block (half panels).
    pub(super) const MR: usize = 6;

    /// `R` rows of packed activations (row `r`'s value `i` at
    /// `x + i * stride + r`) against the `8 * V` columns of a
    /// panel that start at `panel` (row stride `NR`): the first `cols`
    /// outputs of each row to `out + r * ld`. `V` is 2 (half a panel, up to
    /// 6 rows) or 4 (the whole panel, one row: a decode step's four chains
    /// keep both FMA pipes busy while the weights stream past).
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `x + i * stride + r` must be readable
    /// for `i < k`, `r < R`,
    /// `panel + i * NR + c` be readable for `i < k`, `c < 8 * V`, and
    /// `out + r * ld + c` writable for `c < cols`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block<const R: usize, const V: usize>(
        x: *const f32,
        stride: usize,
        k: usize,
        panel: *const f32,
        out: *mut f32,
        ld: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        for i in 0..k {
            let mut w = [_mm256_setzero_ps(); V];
            for (v, w) in w.iter_mut().enumerate() {
                *w = _mm256_loadu_ps(panel.add(i * NR + 8 * v));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm256_set1_ps(*x.add(i * stride + r));
                for (a, &w) in acc.iter_mut().zip(&w) {
                    *a = _mm256_fmadd_ps(xv, w, *a);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let mut row = [0f32; NR];
            for (v, &a) in acc.iter().enumerate() {
                _mm256_storeu_ps(row.as_mut_ptr().add(8 * v), a);
            }
            std::ptr::copy_nonoverlapping(row.as_ptr(), out.add(r * ld), cols);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU runs against the definition (one `mul_add`
    /// chain per output, in order), bit for bit, on ragged rows and columns;
    /// a kernel the CPU lacks is skipped by saying so.
    #[test]
    fn every_kernel_computes_the_definition_bit_for_bit() {
        let (n, k, m): (usize, usize, usize) = (57, 133, 29);
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 31) % 97) as f32 * 0.013 - 0.6)
            .collect();
        let mut panels = vec![0f32; n.div_ceil(NR) * k * NR];
        for j in 0..n {
            for i in 0..k {
                panels[(j / NR) * k * NR + i * NR + j % NR] = w[j * k + i];
            }
        }
        let mut want = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                want[r * n + j] =
                    (0..k).fold(0f32, |acc, i| x[r * k + i].mul_add(w[j * k + i], acc));
            }
        }
        let runs = [
            (Path::Avx512, super::super::simd::has_avx512()),
            (Path::Avx2, super::super::simd::has_avx2()),
            (Path::Portable, true),
        ];
        for (path, here) in runs {
            if !here {
                eprintln!("packed f32 {path:?}: skipped, this CPU (under ALIGNTDS_CPU) lacks it");
                continue;
            }
            eprintln!("packed f32 {path:?}: ran");
            for rows in [1, 2, 3, 5, 6, 7, 12, 13, m] {
                let mut got = vec![f32::NAN; rows * n];
                let xp = super::super::panels::interleave_rows(&x[..rows * k], rows, k);
                for (p, panel) in panels.chunks(k * NR).enumerate() {
                    let cols = NR.min(n - p * NR);
                    // SAFETY: `got` holds `rows` rows of `n`; this panel
                    // writes columns p * NR .. p * NR + cols of each, and
                    // `path` runs on this CPU (checked above).
                    #[allow(unsafe_code)]
                    unsafe {
                        panel_product_on(
                            path,
                            &xp,
                            rows,
                            k,
                            panel,
                            got.as_mut_ptr().add(p * NR),
                            n,
                            cols,
                        )
                    };
                }
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{path:?}, {rows} rows, output {i}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
