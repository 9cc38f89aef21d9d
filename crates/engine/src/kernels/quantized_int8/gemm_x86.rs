//! The GEMM's micro-kernel on AVX512-VNNI (see gemm.rs for the layout and
//! the parent for the float order it shares with the row kernels).

use std::arch::x86_64::*;

use super::tile::{Tile, TILE, TILES_PER_TASK};
use super::{GgmlDType, QuantizedRows, LANES};

/// Activation rows per micro-tile of the GEMM: each unpacked weight vector
/// is loaded once for all of them.
const GEMM_ROWS: usize = 4;

/// The GEMM's weight rows (`rows`: up to [`TILES_PER_TASK`] tiles, whole but
/// maybe the last; `tiles` as many to unpack them into) against
/// every activation row of `x` (`tiled`: Q4_0 rows repacked, see q4_0x8): columns `0..rows / bytes_per_row` of the
/// row-major output at `out` (`stride` values per row), tile by tile.
///
/// # Safety
/// AVX-512 (F, BW, VL), AVX512-VNNI, AVX2 and F16C must be available; `rows`
/// whole rows of `x.blocks` chunks of a supported type; `out` valid for
/// writes of those columns of `x`'s rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn gemm_vnni(
    (dtype, tiled): (GgmlDType, bool),
    rows: &[u8],
    bytes_per_row: usize,
    x: &QuantizedRows,
    out: *mut f32,
    stride: usize,
    tiles: &mut [Tile],
) {
    // One arm per type, so the per-type branches fold away.
    match dtype {
        GgmlDType::Q8_0 => gemm_tiles(
            (GgmlDType::Q8_0, tiled),
            (rows, bytes_per_row),
            x,
            (out, stride),
            tiles,
        ),
        GgmlDType::Q4_0 => gemm_tiles(
            (GgmlDType::Q4_0, tiled),
            (rows, bytes_per_row),
            x,
            (out, stride),
            tiles,
        ),
        GgmlDType::Q6K => gemm_tiles(
            (GgmlDType::Q6K, tiled),
            (rows, bytes_per_row),
            x,
            (out, stride),
            tiles,
        ),
        _ => gemm_tiles(
            (GgmlDType::Q4K, tiled),
            (rows, bytes_per_row),
            x,
            (out, stride),
            tiles,
        ),
    }
}

// Inlined into gemm_vnni, which enables the features.
#[inline(always)]
unsafe fn gemm_tiles(
    (dtype, tiled): (GgmlDType, bool),
    (rows, bytes_per_row): (&[u8], usize),
    x: &QuantizedRows,
    (out, stride): (*mut f32, usize),
    tiles: &mut [Tile],
) {
    let m = x.rows();
    let mut masks = [0 as __mmask16; TILES_PER_TASK];
    let parts = rows.chunks(TILE * bytes_per_row);
    let used = parts.len();
    for ((tile, part), mask) in tiles.iter_mut().zip(parts).zip(&mut masks) {
        tile.fill(dtype, part, bytes_per_row, tiled);
        *mask = ((1u32 << (part.len() / bytes_per_row)) - 1) as __mmask16;
    }
    // Rows outer, tiles inner: a micro-tile's stores land side by side in
    // each output row (a large vocabulary's rows are pages apart).
    for r0 in (0..m).step_by(GEMM_ROWS) {
        for (t, (tile, &mask)) in tiles.iter().zip(&masks).take(used).enumerate() {
            gemm_micro(dtype, tile, x, r0, (out.add(t * TILE), stride, mask));
        }
    }
}

/// `v[at]` in every lane, broadcast straight from memory (not through a
/// general register). `at` must be in bounds.
#[inline(always)]
unsafe fn splat(v: &[i32], at: usize) -> __m512i {
    _mm512_set1_epi32(*v.get_unchecked(at))
}

/// Activation rows `r0..r0 + GEMM_ROWS` (the last row repeated past `x`'s
/// end, its results dropped) against one unpacked tile.
// Inlined into gemm_vnni, which enables the features.
#[inline(always)]
unsafe fn gemm_micro(
    dtype: GgmlDType,
    tile: &Tile,
    x: &QuantizedRows,
    r0: usize,
    (out, stride, mask): (*mut f32, usize, __mmask16),
) {
    let (blocks, m) = (x.blocks, x.rows());
    let first: [usize; GEMM_ROWS] = std::array::from_fn(|i| (r0 + i).min(m - 1) * blocks);
    let q = x.q.as_ptr() as *const i32;
    let mut acc = [[_mm512_setzero_ps(); LANES]; GEMM_ROWS];
    for b in 0..blocks {
        // The chunk's raw sums: Q6_K's halves apart (their scales differ).
        let mut s1 = [_mm512_setzero_si512(); GEMM_ROWS];
        let mut s2 = [_mm512_setzero_si512(); GEMM_ROWS];
        for quad in 0..8 {
            let w = _mm512_load_si512(tile.w.as_ptr().add(8 * b + quad).cast());
            for i in 0..GEMM_ROWS {
                let a = _mm512_set1_epi32(q.add((first[i] + b) * 8 + quad).read());
                if dtype == GgmlDType::Q6K && quad >= 4 {
                    s2[i] = _mm512_dpbusd_epi32(s2[i], w, a);
                } else {
                    s1[i] = _mm512_dpbusd_epi32(s1[i], w, a);
                }
            }
        }
        let dw = _mm512_loadu_ps(tile.dw[b].as_ptr());
        let ta = _mm512_loadu_si512(tile.a[b].as_ptr().cast());
        let tb = _mm512_loadu_si512(tile.b[b].as_ptr().cast());
        for i in 0..GEMM_ROWS {
            let at = first[i] + b;
            // super::chunk_sums, sixteen weight rows at once, Chunk::offset
            // as shifts (32 = 1 << 5, 8 = 1 << 3, 128 = 1 << 7).
            let s = match dtype {
                GgmlDType::Q6K => _mm512_add_epi32(
                    _mm512_mullo_epi32(
                        ta,
                        _mm512_sub_epi32(s1[i], _mm512_slli_epi32(splat(&x.lo, at), 5)),
                    ),
                    _mm512_mullo_epi32(
                        tb,
                        _mm512_sub_epi32(s2[i], _mm512_slli_epi32(splat(&x.hi, at), 5)),
                    ),
                ),
                GgmlDType::Q4K => _mm512_mullo_epi32(ta, s1[i]),
                GgmlDType::Q4_0 => _mm512_sub_epi32(s1[i], _mm512_slli_epi32(splat(&x.sum, at), 3)),
                _ => _mm512_sub_epi32(s1[i], _mm512_slli_epi32(splat(&x.sum, at), 7)),
            };
            let dx = _mm512_set1_ps(*x.d.get_unchecked(at));
            // Not fused: the portable loop's multiplies and adds, the same bits.
            let mut t = _mm512_mul_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(s));
            if dtype == GgmlDType::Q4K {
                let dmin = _mm512_loadu_ps(tile.dmin[b].as_ptr());
                let mins = _mm512_mullo_epi32(tb, splat(&x.sum, at));
                t = _mm512_sub_ps(
                    t,
                    _mm512_mul_ps(_mm512_mul_ps(dmin, dx), _mm512_cvtepi32_ps(mins)),
                );
            }
            let lane = &mut acc[i][b % LANES];
            *lane = _mm512_add_ps(*lane, t);
        }
    }
    for (i, l) in acc.iter().enumerate().take(m.saturating_sub(r0)) {
        let sum = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(l[0], l[1]), _mm512_add_ps(l[2], l[3])),
            _mm512_add_ps(_mm512_add_ps(l[4], l[5]), _mm512_add_ps(l[6], l[7])),
        );
        _mm512_mask_storeu_ps(out.add((r0 + i) * stride), mask, sum);
    }
}
