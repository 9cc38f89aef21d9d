//! The f32 case of the decode products (see quantized_gemv): dense weight rows
//! against a few activation rows, register-blocked. Each step loads four weight
//! vectors and four activation vectors for sixteen fused multiply-adds, where
//! the block loop of the quantized kernel (one weight row at a time, a copy of
//! each block, a scale multiply) spends more loads and operations than
//! products: at a batch of 8-16 sequences decoding is compute-bound, so this
//! is what sets f32 generation speed.

/// Weight rows and activation rows per register block: 16 accumulators,
/// 4 weight vectors and an activation vector in AVX-512's 32 registers.
const BLOCK: usize = 4;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// `Σ_k w[j][k] x[r][k]` for `J` weight rows and `R` activation rows of
    /// length `k` (a multiple of 16), 16 lanes per sum. Every (j, r) sum runs
    /// in the same order whatever `J` and `R` are, so a row's result does not
    /// depend on the rows batched with it.
    ///
    /// # Safety
    /// AVX-512F must be available; each pointer must have `k` readable floats.
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const J: usize, const R: usize>(
        w: [*const f32; J],
        x: [*const f32; R],
        k: usize,
        next: Option<*const f32>,
        out: &mut [[f32; R]; J],
    ) {
        let mut acc = [[_mm512_setzero_ps(); R]; J];
        let mut wv = [_mm512_setzero_ps(); J];
        let mut at = 0;
        while at < k {
            // The next weight rows, one cache line per row and step: loaded
            // from memory while these are multiplied (they are contiguous, so
            // `BLOCK` lines per step cover them in one pass over k).
            if let Some(next) = next {
                for j in 0..BLOCK {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(j * k + at) as *const i8);
                }
            }
            for j in 0..J {
                wv[j] = _mm512_loadu_ps(w[j].add(at));
            }
            for r in 0..R {
                let xv = _mm512_loadu_ps(x[r].add(at));
                for j in 0..J {
                    acc[j][r] = _mm512_fmadd_ps(wv[j], xv, acc[j][r]);
                }
            }
            at += 16;
        }
        for j in 0..J {
            for r in 0..R {
                out[j][r] = _mm512_reduce_add_ps(acc[j][r]);
            }
        }
    }

    /// Weight rows `w` (`[rows, k]`) against the `m` activation rows `x`
    /// (`[m, k]`): `out` is `[rows, m]`.
    ///
    /// # Safety
    /// AVX-512F must be available; `k` a multiple of 16, `w.len()` and
    /// `x.len()` multiples of `k`, `out.len() == rows * m`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(w: &[f32], k: usize, x: &[f32], out: &mut [f32]) {
        let rows = w.len() / k;
        let m = x.len() / k;
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut j0 = 0;
        while j0 < rows {
            let jn = BLOCK.min(rows - j0);
            let mut r0 = 0;
            while r0 < m {
                let rn = BLOCK.min(m - r0);
                macro_rules! run {
                    ($j:literal, $r:literal) => {{
                        let mut ws = [wp; $j];
                        for (i, p) in ws.iter_mut().enumerate() {
                            *p = wp.add((j0 + i) * k);
                        }
                        let mut xs = [xp; $r];
                        for (i, p) in xs.iter_mut().enumerate() {
                            *p = xp.add((r0 + i) * k);
                        }
                        let mut sums = [[0f32; $r]; $j];
                        // Only on the first pass over these weight rows, and
                        // only rows this call owns.
                        let next = (r0 == 0 && j0 + 2 * BLOCK <= rows)
                            .then(|| wp.wrapping_add((j0 + BLOCK) * k));
                        block::<$j, $r>(ws, xs, k, next, &mut sums);
                        for (i, s) in sums.iter().enumerate() {
                            let at = (j0 + i) * m + r0;
                            out[at..at + $r].copy_from_slice(s);
                        }
                    }};
                }
                macro_rules! by_rows {
                    ($j:literal) => {
                        match rn {
                            1 => run!($j, 1),
                            2 => run!($j, 2),
                            3 => run!($j, 3),
                            _ => run!($j, 4),
                        }
                    };
                }
                match jn {
                    1 => by_rows!(1),
                    2 => by_rows!(2),
                    3 => by_rows!(3),
                    _ => by_rows!(4),
                }
                r0 += rn;
            }
            j0 += jn;
        }
    }
}

/// Whether this CPU runs the blocked kernel (AVX-512); elsewhere the generic
/// loop of quantized_gemv serves f32 too.
pub fn available() -> bool {
    super::simd::has_avx512()
}

/// `out[j * m + r] = Σ_k w[j][k] x[r][k]` for weight rows `w` (`[rows, k]`)
/// and activation rows `x` (`[m, k]`). Returns false (and leaves `out`) where
/// the kernel does not apply: not [`available`], `k` not a multiple of 16, or
/// shapes that do not fit.
#[allow(unsafe_code)]
pub fn rows(w: &[f32], k: usize, x: &[f32], out: &mut [f32]) -> bool {
    let fits = k > 0
        && k.is_multiple_of(16)
        && w.len().is_multiple_of(k)
        && x.len().is_multiple_of(k)
        && out.len() == (w.len() / k) * (x.len() / k);
    #[cfg(target_arch = "x86_64")]
    if fits && available() {
        // SAFETY: AVX-512F was detected just above and the shapes were checked.
        unsafe { avx512::rows(w, k, x, out) };
        return true;
    }
    let _ = (fits, w, x, out);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_rows_match_f64_sums_and_do_not_depend_on_the_batch() {
        let (n, k, m) = (7, 96, 6);
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8)
            .collect();
        let mut out = vec![0f32; n * m];
        if !rows(&w, k, &x, &mut out) {
            eprintln!("no AVX-512 here: the blocked kernel is not used");
            return;
        }
        for j in 0..n {
            for r in 0..m {
                let want: f64 = (0..k)
                    .map(|i| w[j * k + i] as f64 * x[r * k + i] as f64)
                    .sum();
                let got = out[j * m + r] as f64;
                assert!(
                    (got - want).abs() < 1e-4 * want.abs().max(1.0),
                    "{j},{r}: {got} vs {want}"
                );
            }
        }
        // Each activation row alone, and each weight row alone: the same bits.
        for r in 0..m {
            let mut alone = vec![0f32; n];
            rows(&w, k, &x[r * k..(r + 1) * k], &mut alone);
            for j in 0..n {
                assert_eq!(alone[j], out[j * m + r], "row {r}, weight {j}");
            }
        }
        let mut one = vec![0f32; m];
        rows(&w[3 * k..4 * k], k, &x, &mut one);
        assert_eq!(one, out[3 * m..4 * m]);
    }
}
