//! Pieces of ggml's block layouts that the block kernels share
//! (quantized_gemv's exact products and quantized_int8's integer ones): a
//! leaf, so neither kernel file needs the other's internals.

/// f16 to f32 without a table or a library call (ggml scales are finite).
#[inline(always)]
pub(super) fn half_bits(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if exp == 0 {
        // Zero or subnormal: mant * 2^-24.
        let v = mant as f32 * 5.960_464_5e-8;
        f32::from_bits(v.to_bits() | sign)
    } else {
        f32::from_bits(sign | ((exp + 112) << 23) | (mant << 13))
    }
}

/// Sub-block `s`'s (0..8) 6-bit scale and min from a Q4_K super-block's 12
/// packed bytes (ggml's `get_scale_min_k4`).
#[inline(always)]
pub(super) fn q4k_scale_min(sc: &[u8], s: usize) -> (u8, u8) {
    if s < 4 {
        (sc[s] & 63, sc[s + 4] & 63)
    } else {
        (
            (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4),
            (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4),
        )
    }
}
