//! Row kernels for the per-position work over the whole vocabulary, written so
//! the compiler vectorises them: a branch-free exp (Cephes' single-precision
//! polynomial, within about an ulp of the libm one) and lane-wise max and sums.

const LANES: usize = 8;

/// e^x for finite x and -inf; below about -87.3 it returns a value under 2^-125
/// rather than 0, which no sum over a row with its maximum subtracted can see.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// tanh x from [`exp_f32`] (branch-free, so loops over it vectorise; within
/// 2e-7 of libm's): sign(x) (1 - e) / (1 + e) with e = e^(-2|x|), which never
/// overflows.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let e = exp_f32(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// ln x for positive normal x (Cephes' single-precision polynomial, branch-free).
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    let f = if big { 0.5 * m } else { m } - 1.0;
    let e = (e + i32::from(big)) as f32;
    let z = f * f;
    let p = ((((((((7.037_683_6e-2 * f - 1.151_461_1e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333e-1)
        * f
        * z;
    let y = p + e * -2.121_944_4e-4 - 0.5 * z;
    f + y + e * 0.693_359_4
}

/// The largest value of a row (NEG_INFINITY for an empty row).
#[inline(always)]
pub fn max_f32(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    rest.iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Sum of e^(x - shift) over a row, accumulated in f64.
#[inline(always)]
pub fn sum_exp(row: &[f32], shift: f32) -> f64 {
    let mut lanes = [0f64; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (s, &x) in lanes.iter_mut().zip(c) {
            *s += exp_f32(x - shift) as f64;
        }
    }
    lanes.iter().sum::<f64>() + rest.iter().map(|&x| exp_f32(x - shift) as f64).sum::<f64>()
}

crate::widest!(
    /// Writes the log-softmax of `logits` into `out` (same length): the max is
    /// subtracted before exponentiating and the normaliser summed in f64.
    pub fn log_softmax_into(logits: &[f32], out: &mut [f32]) = log_softmax_kernel
);

crate::widest!(
    /// [`log_softmax_into`] in place: the same arithmetic, so the same values.
    pub fn log_softmax_in_place(row: &mut [f32]) = log_softmax_in_place_kernel
);

#[inline(always)]
fn log_softmax_in_place_kernel(row: &mut [f32]) {
    let max = max_f32(row);
    if !max.is_finite() {
        return;
    }
    let log_sum = sum_exp(row, max).ln() as f32;
    for x in row.iter_mut() {
        *x = (*x - max) - log_sum;
    }
}

#[inline(always)]
fn log_softmax_kernel(logits: &[f32], out: &mut [f32]) {
    let max = max_f32(logits);
    if !max.is_finite() {
        out.copy_from_slice(logits);
        return;
    }
    // (x - max) - ln(sum): both steps on small numbers, so huge logits keep their precision.
    let log_sum = sum_exp(logits, max).ln() as f32;
    for (o, &x) in out.iter_mut().zip(logits) {
        *o = (x - max) - log_sum;
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn tanh_is_within_2e7_of_libm() {
        let mut worst = 0f32;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((super::tanh_f32(x) - x.tanh()).abs());
        }
        assert!(worst < 2e-7, "{worst}");
        assert_eq!(super::tanh_f32(1e4), 1.0);
        assert_eq!(super::tanh_f32(-1e4), -1.0);
        assert_eq!(super::tanh_f32(0.0), 0.0);
    }

    use super::*;

    #[test]
    fn exp_matches_libm_within_two_ulps() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, libm) = (exp_f32(x), x.exp());
            let ulps = (ours.to_bits() as i64 - libm.to_bits() as i64).abs();
            assert!(ulps <= 2, "exp({x}) = {ours} vs {libm}: {ulps} ulps");
            x += 0.0137;
        }
        assert!(exp_f32(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn ln_matches_libm_within_two_ulps() {
        let mut x = 1e-37f32;
        while x < 1e30 {
            let (ours, libm) = (ln_f32(x), x.ln());
            let ulps = (ours.to_bits() as i64 - libm.to_bits() as i64).abs();
            assert!(
                ulps <= 2 || (ours - libm).abs() < 1e-7,
                "ln({x}) = {ours} vs {libm}"
            );
            x *= 1.0137;
        }
        assert_eq!(ln_f32(1.0), 0.0);
    }

    #[test]
    fn log_softmax_matches_a_direct_f64_computation() {
        let row: Vec<f32> = (0..1003)
            .map(|i| ((i * 37 % 101) as f32) * 0.31 - 12.0)
            .collect();
        let mut out = vec![0f32; row.len()];
        log_softmax_into(&row, &mut out);
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let lse = max
            + row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        for (o, &x) in out.iter().zip(&row) {
            assert!((*o as f64 - (x as f64 - lse)).abs() < 2e-6);
        }
        assert_eq!(max_f32(&row) as f64, max);
    }
}
