//! Kernels compiled for the widest vectors the CPU has, chosen at run time.
//! The release build targets baseline x86-64 (SSE2), so a loop the compiler
//! vectorises runs 4 f32 lanes wide unless it is compiled again with AVX2 or
//! AVX-512 enabled. Only the instructions change: Rust neither contracts
//! `a * b + c` into an FMA nor reorders float sums, so every variant computes
//! bit for bit what the baseline does (tested below), and results never depend
//! on the machine's vector width.

/// `widest!(pub fn name(a: A, b: B) -> R = kernel);` defines `name`, which
/// runs `kernel` (an `#[inline(always)]` function with that signature)
/// compiled for AVX-512 or AVX2 where the CPU has them, else as built.
#[macro_export]
macro_rules! widest {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $kernel:path) => {
        $(#[$meta])*
        #[allow(unsafe_code)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $kernel($($arg),*)
                }
                if $crate::math::has_avx512() {
                    // SAFETY: every feature avx512 enables was detected on this CPU.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::math::has_avx2() {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}

/// Whether this CPU runs AVX-512F, AVX2 and FMA (cached by std after the first call).
#[cfg(target_arch = "x86_64")]
pub fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && has_avx2()
}

/// Whether this CPU runs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(test)]
mod tests {
    #[inline(always)]
    fn kernel(row: &[f32], out: &mut [f32]) -> f32 {
        let max = crate::kernels::fastmath::max_f32(row);
        let mut sum = 0f32;
        for (o, &x) in out.iter_mut().zip(row) {
            *o = crate::kernels::fastmath::exp_f32(x - max) * 1.5 + x / 3.0;
        }
        for &o in out.iter() {
            sum += o;
        }
        sum + crate::kernels::fastmath::sum_exp(row, max) as f32
    }

    widest!(fn dispatched(row: &[f32], out: &mut [f32]) -> f32 = kernel);

    #[test]
    fn the_widest_variant_computes_what_the_baseline_does_bit_for_bit() {
        let row: Vec<f32> = (0..4099)
            .map(|i| ((i * 7919 % 1013) as f32) * 0.037 - 19.0)
            .collect();
        let (mut a, mut b) = (vec![0f32; row.len()], vec![0f32; row.len()]);
        let (sa, sb) = (kernel(&row, &mut a), dispatched(&row, &mut b));
        assert_eq!(sa.to_bits(), sb.to_bits());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
