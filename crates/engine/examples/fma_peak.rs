//! The f32 fused multiply-add peak of this machine: every thread runs
//! independent FMA chains (enough of them to cover the latency of two FMA
//! pipes) in the widest vectors the CPU has, best of 5. The bound a scoring
//! pass's projections can approach; docs/engine.md compares against it.
//! `cargo run --release -p aligntds-engine --example fma_peak`

use rayon::prelude::*;
use std::hint::black_box;
use std::time::Instant;

/// Independent accumulator chains per thread: enough for two pipes of
/// latency 4, few enough that AVX2's 16 registers hold them and the operands.
const CHAINS: usize = 10;
/// Multiply-adds per chain per run.
const STEPS: usize = 1 << 24;

fn main() {
    let (lanes, run): (usize, fn() -> f32) = widest();
    let threads = rayon::current_num_threads();
    let mut best = f64::INFINITY;
    let mut checksum = 0f64;
    for _ in 0..5 {
        let t0 = Instant::now();
        checksum += (0..threads)
            .into_par_iter()
            .map(|_| run() as f64)
            .sum::<f64>();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let flops = (2 * lanes * CHAINS * STEPS * threads) as f64;
    println!(
        "f32 FMA peak: {:.1} GFLOP/s ({threads} threads, {}-lane vectors; checksum {checksum:.3})",
        flops / best / 1e9,
        lanes
    );
    #[cfg(target_arch = "x86_64")]
    if aligntds_engine::math::has_avx512_bf16() {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t0 = Instant::now();
            checksum += (0..threads)
                .into_par_iter()
                .map(|_| {
                    // SAFETY: AVX-512F and AVX512-BF16 were detected.
                    #[allow(unsafe_code)]
                    unsafe {
                        x86::avx512_bf16() as f64
                    }
                })
                .sum::<f64>();
            best = best.min(t0.elapsed().as_secs_f64());
        }
        // Each vdpbf16ps lane multiplies and adds two pairs: 4 flops.
        let flops = (4 * 16 * CHAINS * STEPS * threads) as f64;
        println!(
            "bf16 dot-product peak (vdpbf16ps): {:.1} GFLOP/s (checksum {checksum:.3})",
            flops / best / 1e9
        );
    }
}

/// The widest kernel this CPU runs, with its lanes per vector.
fn widest() -> (usize, fn() -> f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if aligntds_engine::math::has_avx512() {
            return (16, || {
                // SAFETY: AVX-512F was detected.
                #[allow(unsafe_code)]
                unsafe {
                    x86::avx512()
                }
            });
        }
        if aligntds_engine::math::has_avx2() {
            return (8, || {
                // SAFETY: AVX2 and FMA were detected.
                #[allow(unsafe_code)]
                unsafe {
                    x86::avx2()
                }
            });
        }
    }
    (1, scalar)
}

fn scalar() -> f32 {
    let (x, y) = (black_box(0.999_999f32), black_box(1e-6f32));
    let mut acc = black_box([1f32; CHAINS]);
    for _ in 0..STEPS {
        for a in acc.iter_mut() {
            *a = a.mul_add(x, y);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::{CHAINS, STEPS};
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512() -> f32 {
        // Opaque inputs, so the compiler cannot drop or fold the chains.
        let (a, b) = (
            _mm512_set1_ps(black_box(0.999_999)),
            _mm512_set1_ps(black_box(1e-6)),
        );
        let mut acc = black_box([_mm512_set1_ps(1.0); CHAINS]);
        for _ in 0..STEPS {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// # Safety
    /// AVX-512F and AVX512-BF16 must be available.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn avx512_bf16() -> f32 {
        let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(black_box(0x3f80_3f80)));
        let mut acc = black_box([_mm512_set1_ps(1.0); CHAINS]);
        for _ in 0..STEPS {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, a);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2() -> f32 {
        let (a, b) = (
            _mm256_set1_ps(black_box(0.999_999)),
            _mm256_set1_ps(black_box(1e-6)),
        );
        let mut acc = black_box([_mm256_set1_ps(1.0); CHAINS]);
        for _ in 0..STEPS {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut sum = 0f32;
        for v in acc {
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), v);
            sum += out.iter().sum::<f32>();
        }
        sum
    }
}
