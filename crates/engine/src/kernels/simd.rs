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

/// Instruction sets the kernels may use, lowest first. `ALIGNTDS_CPU` caps
/// what the CPU offers (`portable`, `avx2`, `avx512`; unset or `native`: all
/// it has), so every path can be run and tested on a CPU that has the widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No runtime-dispatched SIMD: the loops as the baseline build compiles them.
    Portable,
    /// AVX2 and FMA (and F16C), no AVX-512.
    Avx2,
    /// AVX-512 (F, BW, VL), without AVX512-BF16.
    Avx512,
    /// AVX-512 with AVX512-BF16 (the packed bf16 kernel).
    Avx512Bf16,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Avx512Bf16 => "avx512-bf16",
        }
    }
}

/// The cap `ALIGNTDS_CPU` sets (read once); an unknown value is refused
/// loudly at the first kernel call rather than ignored.
fn cap() -> Level {
    static CAP: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("ALIGNTDS_CPU").as_deref() {
        Err(_) | Ok("") | Ok("native") => Level::Avx512Bf16,
        Ok("avx512") => Level::Avx512,
        Ok("avx2") => Level::Avx2,
        Ok("portable") => Level::Portable,
        Ok(other) => panic!(
            "ALIGNTDS_CPU={other}: use native, avx512, avx2 or portable (kernels capped at that level)"
        ),
    })
}

/// The widest level the kernels use here: what the CPU has, under the cap.
pub fn level() -> Level {
    if has_avx512_bf16() {
        Level::Avx512Bf16
    } else if has_avx512() {
        Level::Avx512
    } else if has_avx2() {
        Level::Avx2
    } else {
        Level::Portable
    }
}

/// Whether kernels may use AVX-512 (F, BW, VL) with AVX2, FMA and F16C.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cap() >= Level::Avx512
            && has_avx2()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether kernels may use AVX2, FMA and F16C.
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cap() >= Level::Avx2
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether kernels may use AVX512-VNNI (with AVX-512): a CPU feature of the
/// AVX-512 level, like BF16 of the one above it.
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx512() && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether kernels may use AVX512-BF16 (with AVX-512).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cap() >= Level::Avx512Bf16
            && has_avx512()
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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
