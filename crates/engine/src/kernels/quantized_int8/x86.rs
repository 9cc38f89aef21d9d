//! The integer paths: AVX-512 VNNI and AVX2 (see the parent for the order
//! of the float arithmetic they share with the portable loop).

use std::arch::x86_64::*;

use super::{group_bytes, GgmlDType, QuantizedRows, LANES};

/// One group of eight chunks of a weight row, unpacked once for every
/// activation row: the chunks' bytes (unsigned, but Q8_0's signed), their
/// scales, and the integer multipliers of the K-quants.
struct Group {
    w: [__m256i; 8],
    dw: __m256,
    /// Q4_K: the mins' scale.
    dmin: __m256,
    /// Q6_K: each chunk's lanes times its two 16-value scales.
    mul: [__m256i; 8],
    /// Q6_K: the chunks' first and second 16-value scales; Q4_K: the
    /// chunks' scales and mins.
    a: __m256i,
    b: __m256i,
}

// Inlined into the entry points below, which enable the features.
#[inline(always)]
unsafe fn half(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16((p as *const i16).read_unaligned()))
}

/// Word offsets of a Q4_0 group's eight scales within its first 128 bytes
/// (block `i`'s scale at byte 18 i), for `vpermt2w`.
static Q4_0_SCALE_WORDS: [u16; 32] = {
    let mut words = [0u16; 32];
    let mut i = 0;
    while i < 8 {
        words[i] = 9 * i as u16;
        i += 1;
    }
    words
};

/// Group `g` of a row (`p`: its first byte); `wide`: the caller has AVX-512
/// (F, BW), so the Q4_0 scales gather in two loads and one permute.
// Inlined into the entry points below, which enable the features.
#[inline(always)]
unsafe fn group(dtype: GgmlDType, p: *const u8, wide: bool) -> Group {
    let zero = _mm256_setzero_si256();
    let mut group = Group {
        w: [zero; 8],
        dw: _mm256_setzero_ps(),
        dmin: _mm256_setzero_ps(),
        mul: [zero; 8],
        a: zero,
        b: zero,
    };
    let nibbles = _mm256_set1_epi8(0x0f);
    match dtype {
        GgmlDType::Q8_0 | GgmlDType::Q4_0 => {
            let bb = if dtype == GgmlDType::Q8_0 { 34 } else { 18 };
            for (i, w) in group.w.iter_mut().enumerate() {
                let b = p.add(i * bb);
                *w = if dtype == GgmlDType::Q8_0 {
                    _mm256_loadu_si256(b.add(2).cast())
                } else {
                    // Low nibbles are values 0-15, high ones 16-31: the 16
                    // bytes in both halves, the high half shifted down a
                    // nibble as 64-bit lanes (each byte's low nibble is then
                    // its high one; the mask drops the next byte's bits).
                    let q = _mm256_broadcastsi128_si256(_mm_loadu_si128(b.add(2).cast()));
                    let q = _mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4));
                    _mm256_and_si256(q, nibbles)
                };
            }
            // f16 to f32 is exact, so either way this equals the portable
            // loop's half_bits.
            group.dw = if wide && dtype == GgmlDType::Q4_0 {
                // The group's first 128 bytes hold all eight scales.
                let words = _mm512_permutex2var_epi16(
                    _mm512_loadu_si512(p.cast()),
                    _mm512_loadu_si512(Q4_0_SCALE_WORDS.as_ptr().cast()),
                    _mm512_loadu_si512(p.add(64).cast()),
                );
                _mm256_cvtph_ps(_mm512_castsi512_si128(words))
            } else {
                // Gathered in a register (narrow stores then a wide load
                // would stall store forwarding).
                let s = |i: usize| (p.add(i * bb) as *const i16).read_unaligned();
                _mm256_cvtph_ps(_mm_setr_epi16(
                    s(0),
                    s(1),
                    s(2),
                    s(3),
                    s(4),
                    s(5),
                    s(6),
                    s(7),
                ))
            };
        }
        GgmlDType::Q6K => {
            for n in 0..2 {
                let ql0 = _mm256_loadu_si256(p.add(n * 64).cast());
                let ql1 = _mm256_loadu_si256(p.add(n * 64 + 32).cast());
                let qh = _mm256_loadu_si256(p.add(128 + n * 32).cast());
                // Each quarter's high 2-bit pairs, in place above the nibble.
                let high = [
                    high_bits(qh),
                    high_bits(_mm256_srli_epi16(qh, 2)),
                    high_bits(_mm256_srli_epi16(qh, 4)),
                    high_bits(_mm256_srli_epi16(qh, 6)),
                ];
                let w = &mut group.w[n * 4..n * 4 + 4];
                w[0] = _mm256_or_si256(_mm256_and_si256(ql0, nibbles), high[0]);
                w[1] = _mm256_or_si256(_mm256_and_si256(ql1, nibbles), high[1]);
                w[2] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), nibbles),
                    high[2],
                );
                w[3] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), nibbles),
                    high[3],
                );
            }
            // The 16 signed scales spread by byte shuffles, not built from
            // scalars (which cost more than the chunks' products).
            let sc = _mm_loadu_si128(p.add(192).cast());
            for (c, m) in group.mul.iter_mut().enumerate() {
                let (x, y) = (2 * c as i8, 2 * c as i8 + 1);
                *m = spread(
                    sc,
                    _mm_setr_epi8(x, x, x, x, y, y, y, y, 0, 0, 0, 0, 0, 0, 0, 0),
                );
            }
            group.a = spread(
                sc,
                _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0),
            );
            group.b = spread(
                sc,
                _mm_setr_epi8(1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0),
            );
            group.dw = half(p.add(208));
        }
        _ => {
            for (c, w) in group.w.iter_mut().enumerate() {
                let q = _mm256_loadu_si256(p.add(16 + (c / 2) * 32).cast());
                let q = if c % 2 == 0 {
                    q
                } else {
                    _mm256_srli_epi16(q, 4)
                };
                *w = _mm256_and_si256(q, nibbles);
            }
            // The eight 6-bit scales and mins unpacked a word at a time as
            // ggml does (the same values as q4k_scale_min, checked by the
            // tests against the portable loop), then widened.
            let word = |at: usize| (p.add(4 + at) as *const u32).read_unaligned();
            let (u0, u1, u2) = (word(0), word(4), word(8));
            let (k1, k2, k3) = (0x3f3f_3f3fu32, 0x0f0f_0f0fu32, 0x0303_0303u32);
            let scales = [u0 & k1, (u2 & k2) | (((u0 >> 6) & k3) << 4)];
            let mins = [u1 & k1, ((u2 >> 4) & k2) | (((u1 >> 6) & k3) << 4)];
            group.a = widen(scales);
            group.b = widen(mins);
            group.dw = half(p);
            group.dmin = half(p.add(2));
        }
    }
    group
}

/// Q6_K's high 2-bit pairs (in the low bits of each byte of `h`) moved above
/// the nibble.
// Inlined into the entry points below, which enable the features (as every
// helper here: a closure would not be, and would call each intrinsic).
#[inline(always)]
unsafe fn high_bits(h: __m256i) -> __m256i {
    _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(3)), 4)
}

/// Bytes of `sc` picked by `idx` (the first eight), sign-extended to i32 lanes.
#[inline(always)]
unsafe fn spread(sc: __m128i, idx: __m128i) -> __m256i {
    _mm256_cvtepi8_epi32(_mm_shuffle_epi8(sc, idx))
}

/// The eight bytes of two words (low word first), zero-extended to i32 lanes.
#[inline(always)]
unsafe fn widen(w: [u32; 2]) -> __m256i {
    let bytes = ((w[1] as u64) << 32 | w[0] as u64) as i64;
    _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes))
}

/// Eight chunks' 8-lane i32 partial sums reduced to one vector of the
/// eight chunks' totals, chunk `i` in lane `i`.
// Inlined into the entry points below, which enable the features.
#[inline(always)]
unsafe fn totals(v: &[__m256i; 8]) -> __m256i {
    let h01 = _mm256_hadd_epi32(v[0], v[1]);
    let h23 = _mm256_hadd_epi32(v[2], v[3]);
    let h45 = _mm256_hadd_epi32(v[4], v[5]);
    let h67 = _mm256_hadd_epi32(v[6], v[7]);
    let a = _mm256_hadd_epi32(h01, h23);
    let b = _mm256_hadd_epi32(h45, h67);
    // a's low half holds chunks 0-3's low-lane sums, its high half their
    // high-lane sums; b the same for chunks 4-7.
    _mm256_add_epi32(
        _mm256_permute2x128_si256(a, b, 0x20),
        _mm256_permute2x128_si256(a, b, 0x31),
    )
}

/// Group `g` of a weight row (unpacked in `gr`) against activation row
/// `r`, added into `acc`.
// Inlined into the entry points below, which enable the features.
#[inline(always)]
unsafe fn step(
    dtype: GgmlDType,
    gr: &Group,
    x: &QuantizedRows,
    (g, r): (usize, usize),
    acc: __m256,
    dot: &impl Fn(__m256i, __m256i) -> __m256i,
) -> __m256 {
    let first = r * x.blocks + g * 8;
    let q = x.q.as_ptr().add(first);
    let mut parts = [_mm256_setzero_si256(); 8];
    for (i, p) in parts.iter_mut().enumerate() {
        *p = dot(gr.w[i], _mm256_load_si256(q.add(i).cast()));
        if dtype == GgmlDType::Q6K {
            *p = _mm256_mullo_epi32(*p, gr.mul[i]);
        }
    }
    let mut s = totals(&parts);
    let lo = _mm256_loadu_si256(x.lo.as_ptr().add(first).cast());
    let hi = _mm256_loadu_si256(x.hi.as_ptr().add(first).cast());
    let mut m = _mm256_setzero_si256();
    match dtype {
        GgmlDType::Q4_0 => s = _mm256_sub_epi32(s, _mm256_slli_epi32(_mm256_add_epi32(lo, hi), 3)),
        GgmlDType::Q6K => {
            let offset =
                _mm256_add_epi32(_mm256_mullo_epi32(gr.a, lo), _mm256_mullo_epi32(gr.b, hi));
            s = _mm256_sub_epi32(s, _mm256_slli_epi32(offset, 5));
        }
        GgmlDType::Q4K => {
            s = _mm256_mullo_epi32(s, gr.a);
            m = _mm256_mullo_epi32(gr.b, _mm256_add_epi32(lo, hi));
        }
        _ => {}
    }
    let dx = _mm256_loadu_ps(x.d.as_ptr().add(first));
    // Not fused: the portable loop's multiplies and adds, the same bits.
    let mut t = _mm256_mul_ps(_mm256_mul_ps(gr.dw, dx), _mm256_cvtepi32_ps(s));
    if dtype == GgmlDType::Q4K {
        t = _mm256_sub_ps(
            t,
            _mm256_mul_ps(_mm256_mul_ps(gr.dmin, dx), _mm256_cvtepi32_ps(m)),
        );
    }
    _mm256_add_ps(acc, t)
}

/// Adds one weight row's whole groups into every activation row's
/// `lanes`, each group unpacked once for all rows; returns the chunks
/// done. `dot(w, a)` is one chunk's 8-lane integer partials (lane `j`:
/// bytes `4j..4j+4`), with Q8_0's signs handled.
// Inlined into the entry points below, which enable the features.
#[inline(always)]
unsafe fn groups(
    dtype: GgmlDType,
    wide: bool,
    row: &[u8],
    x: &QuantizedRows,
    lanes: &mut [[f32; LANES]],
    dot: impl Fn(__m256i, __m256i) -> __m256i,
) -> usize {
    let groups = x.blocks / 8;
    // No closures here: they would not take the caller's target features.
    if let [l] = lanes {
        // One activation row (a single sequence's step): the sum stays in a register.
        let mut acc = _mm256_loadu_ps(l.as_ptr());
        for g in 0..groups {
            let gr = group(dtype, row.as_ptr().add(g * group_bytes(dtype)), wide);
            acc = step(dtype, &gr, x, (g, 0), acc, &dot);
        }
        _mm256_storeu_ps(l.as_mut_ptr(), acc);
    } else {
        // Several: each group unpacked once for all of them.
        for g in 0..groups {
            let gr = group(dtype, row.as_ptr().add(g * group_bytes(dtype)), wide);
            for (r, l) in lanes.iter_mut().enumerate() {
                let acc = step(dtype, &gr, x, (g, r), _mm256_loadu_ps(l.as_ptr()), &dot);
                _mm256_storeu_ps(l.as_mut_ptr(), acc);
            }
        }
    }
    groups * 8
}

/// Every row through `groups` with `dtype` a constant in each arm.
macro_rules! per_type {
    ($wide:expr, $dtype:expr, $rows:expr, $bytes:expr, $x:expr, $out:expr, $dot:expr) => {
        match $dtype {
            GgmlDType::Q8_0 => per_type!(@ $wide, GgmlDType::Q8_0, $rows, $bytes, $x, $out, $dot),
            GgmlDType::Q4_0 => per_type!(@ $wide, GgmlDType::Q4_0, $rows, $bytes, $x, $out, $dot),
            GgmlDType::Q6K => per_type!(@ $wide, GgmlDType::Q6K, $rows, $bytes, $x, $out, $dot),
            _ => per_type!(@ $wide, GgmlDType::Q4K, $rows, $bytes, $x, $out, $dot),
        }
    };
    (@ $wide:expr, $t:expr, $rows:expr, $bytes:expr, $x:expr, $out:expr, $dot:expr) => {
        super::all_rows($t, $rows, $bytes, $x, $out, |row, lanes| {
            groups($t, $wide, row, $x, lanes, |w, a| $dot($t, w, a))
        })
    };
}

/// # Safety
/// AVX-512 (F, BW, VL), AVX512-VNNI, AVX2 and F16C must be available;
/// `rows` must be whole rows of `x.blocks` chunks of a supported `dtype`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn rows_vnni(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    x: &QuantizedRows,
    out: &mut [f32],
) {
    let dot = |t: GgmlDType, w: __m256i, a: __m256i| {
        if t == GgmlDType::Q8_0 {
            // vpdpbusd multiplies unsigned by signed bytes: |w| by a with w's sign.
            _mm256_dpbusd_epi32(
                _mm256_setzero_si256(),
                _mm256_abs_epi8(w),
                _mm256_sign_epi8(a, w),
            )
        } else {
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, a)
        }
    };
    per_type!(true, dtype, rows, bytes_per_row, x, out, dot)
}

/// # Safety
/// AVX2, FMA and F16C must be available; `rows` as for [`rows_vnni`].
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rows_avx2(
    dtype: GgmlDType,
    rows: &[u8],
    bytes_per_row: usize,
    x: &QuantizedRows,
    out: &mut [f32],
) {
    let dot = |t: GgmlDType, w: __m256i, a: __m256i| {
        // Pairs of u8 x i8 products into i16 (no saturation: |a| <= 127
        // and the unsigned side is at most 128, so a pair is at most
        // 32,512), then pairs of those into i32.
        let pairs = if t == GgmlDType::Q8_0 {
            _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w))
        } else {
            _mm256_maddubs_epi16(w, a)
        };
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    };
    per_type!(false, dtype, rows, bytes_per_row, x, out, dot)
}
