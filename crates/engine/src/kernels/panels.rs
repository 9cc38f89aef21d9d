//! What the packed kernels share (packed_f32 for f32 panels, packed_bf16
//! for bf16 pairs): the panel and register-block sizes, the activations'
//! layout and the masked store of a block's accumulators.

/// Output columns per panel: two AVX-512 vectors.
pub(super) const NR: usize = 32;
/// Activation rows per register block: 2 x 12 accumulators, two weight
/// vectors and a broadcast within AVX-512's 32 registers.
pub(super) const MR: usize = 12;

/// Activation rows `[m, k]` (f32 values or bf16 pairs) in the kernels'
/// order: blocks of `MR` rows (the last may be shorter), block `b` at
/// `b * MR * k` as `[k][rows]`, so a register block reads its broadcasts
/// from one sequential stream instead of `MR` rows `k` apart (streams the
/// prefetchers lose track of: the f32 products at Qwen3-0.6B's shapes went
/// from about 150 to 200 GFLOP/s on 2 Zen 4 cores). Value `(r, i)` of the
/// block starting at row `r0` is at `r0 * k + i * rows + (r - r0)`.
pub(super) fn interleave_rows<T: Copy + Default + Send + Sync>(
    x: &[T],
    m: usize,
    k: usize,
) -> Vec<T> {
    interleave_rows_with(m, k, |r, row| row.copy_from_slice(&x[r * k..(r + 1) * k]))
}

/// [`interleave_rows`] of the rows `row(r, out)` writes (each `k` values),
/// made and placed block by block in parallel: a conversion (bf16 pairs)
/// happens on the way, with no row-major copy in between.
pub(super) fn interleave_rows_with<T: Copy + Default + Send>(
    m: usize,
    k: usize,
    row: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    let mut packed = vec![T::default(); m * k];
    packed
        .par_chunks_mut(MR * k.max(1))
        .enumerate()
        .for_each(|(b, block)| {
            let rows = block.len() / k.max(1);
            let mut values = vec![T::default(); k];
            for r in 0..rows {
                row(b * MR + r, &mut values);
                for (i, &v) in values.iter().enumerate() {
                    block[i * rows + r] = v;
                }
            }
        });
    packed
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    use super::NR;

    /// Writes `R` rows of one panel's accumulators (`lo`: columns 0..16,
    /// `hi`: 16..32), the first `cols` columns of each, to `out + r * ld`.
    ///
    /// # Safety
    /// AVX-512F must be available and `out + r * ld + c` writable for `c < cols`.
    #[target_feature(enable = "avx512f")]
    pub(in crate::kernels) unsafe fn store<const R: usize>(
        lo: &[__m512; R],
        hi: &[__m512; R],
        out: *mut f32,
        ld: usize,
        cols: usize,
    ) {
        let mask_lo: __mmask16 = if cols >= 16 {
            0xffff
        } else {
            (1u16 << cols) - 1
        };
        let mask_hi: __mmask16 = if cols >= NR {
            0xffff
        } else if cols > 16 {
            (1u16 << (cols - 16)) - 1
        } else {
            0
        };
        for r in 0..R {
            let o = out.add(r * ld);
            _mm512_mask_storeu_ps(o, mask_lo, lo[r]);
            _mm512_mask_storeu_ps(o.add(16), mask_hi, hi[r]);
        }
    }
}
