//! Q4_0 weights repacked eight rows at a time, so a decode step's integer
//! products add lane-wise with no horizontal sums (llama.cpp repacks Q4_0
//! the same way for its CPU kernels, as `block_q4_0x8`).
//!
//! A tile is eight weight rows. Its chunk `b` is 144 bytes, as eight Q4_0
//! blocks are: the eight rows' f16 scales (16 bytes), then four 32-byte
//! pieces, piece `p` holding bytes `4p..4p+4` of each row's 16 nibble bytes,
//! row `j` in 32-bit lane `j`. A piece's low nibbles are values `4p..4p+4`
//! of each row, its high ones values `16+4p..16+4p+4`: one `vpdpbusd`
//! against the activation's matching four bytes, broadcast, adds them into
//! each row's lane.
//!
//! The float arithmetic is the parent's, row by row: chunk `b`'s term
//! `(dw * dx) * s` goes into lane `b % 8` and the lanes are summed as
//! `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))`; here the eight lanes are eight
//! vectors with a row in each element, so every path gives the bits of the
//! row-major Q4_0 kernels.

use super::{QuantizedRows, LANES, MAX_ROWS};

/// Rows per tile.
pub const TILE_ROWS: usize = 8;
/// Bytes of one row's Q4_0 block.
const BLOCK: usize = 18;
/// Bytes of one tile chunk.
pub const CHUNK: usize = TILE_ROWS * BLOCK;

/// `n` row-major Q4_0 rows of `blocks` blocks each (`n` a multiple of
/// [`TILE_ROWS`]) repacked as tiles.
pub fn repack(rows: &[u8], n: usize, blocks: usize) -> Vec<u8> {
    assert!(
        n.is_multiple_of(TILE_ROWS) && rows.len() == n * blocks * BLOCK,
        "{n} Q4_0 rows of {blocks} blocks in {} bytes",
        rows.len()
    );
    let mut out = vec![0u8; rows.len()];
    for (t, tile) in out.chunks_exact_mut(blocks * CHUNK).enumerate() {
        for (b, chunk) in tile.chunks_exact_mut(CHUNK).enumerate() {
            for j in 0..TILE_ROWS {
                let block = &rows[((t * TILE_ROWS + j) * blocks + b) * BLOCK..][..BLOCK];
                chunk[2 * j..2 * j + 2].copy_from_slice(&block[..2]);
                for p in 0..4 {
                    chunk[16 + 32 * p + 4 * j..][..4].copy_from_slice(&block[2 + 4 * p..][..4]);
                }
            }
        }
    }
    out
}

/// Repacked tiles (`n` rows of `blocks` blocks) back in row-major order.
pub fn untile(tiles: &[u8], n: usize, blocks: usize) -> Vec<u8> {
    assert!(n.is_multiple_of(TILE_ROWS) && tiles.len() == n * blocks * BLOCK);
    let mut out = Vec::with_capacity(tiles.len());
    for tile in tiles.chunks_exact(blocks * CHUNK) {
        for j in 0..TILE_ROWS {
            for b in 0..blocks {
                out.extend_from_slice(&block(tile, b, j));
            }
        }
    }
    out
}

/// Whether a Q4_0 weight of `n` rows is repacked (a whole number of tiles).
pub fn repacks(n: usize) -> bool {
    n > 0 && n.is_multiple_of(TILE_ROWS)
}

/// Row `j`'s block `b` of a repacked tile, as the row-major Q4_0 block it
/// came from (for the GEMM's tiles and the tests).
#[inline(always)]
pub fn block(tile: &[u8], b: usize, j: usize) -> [u8; BLOCK] {
    let chunk = &tile[b * CHUNK..][..CHUNK];
    let mut out = [0u8; BLOCK];
    out[..2].copy_from_slice(&chunk[2 * j..2 * j + 2]);
    for p in 0..4 {
        out[2 + 4 * p..][..4].copy_from_slice(&chunk[16 + 32 * p + 4 * j..][..4]);
    }
    out
}

/// `out[row * m + r] = W_row · x_r` for the repacked tiles `tiles` against
/// the `m` activation rows of `x`: the portable loop.
pub fn tiles_plain(tiles: &[u8], x: &QuantizedRows, out: &mut [f32]) {
    let (blocks, m) = (x.blocks, x.rows());
    let half = |c: &[u8], j: usize| super::half_bits(u16::from_le_bytes([c[2 * j], c[2 * j + 1]]));
    for (t, tile) in tiles.chunks_exact(blocks * CHUNK).enumerate() {
        for r in 0..m {
            let mut lanes = [[0f32; TILE_ROWS]; LANES];
            for b in 0..blocks {
                let chunk = &tile[b * CHUNK..][..CHUNK];
                let i = r * blocks + b;
                let q = &x.q[i].0;
                for (j, lane) in lanes[b % LANES].iter_mut().enumerate() {
                    let mut s = 0i32;
                    for p in 0..4 {
                        for l in 0..4 {
                            let w = chunk[16 + 32 * p + 4 * j + l];
                            s += (w & 15) as i32 * q[4 * p + l] as i32;
                            s += (w >> 4) as i32 * q[16 + 4 * p + l] as i32;
                        }
                    }
                    s -= 8 * (x.lo[i] + x.hi[i]);
                    *lane += (half(chunk, j) * x.d[i]) * s as f32;
                }
            }
            for j in 0..TILE_ROWS {
                let l: [f32; LANES] = std::array::from_fn(|c| lanes[c][j]);
                out[(t * TILE_ROWS + j) * m + r] = super::reduce(&l);
            }
        }
    }
}

/// [`tiles_plain`] through the widest path this CPU has.
#[allow(unsafe_code)]
pub fn tiles(tiles: &[u8], x: &QuantizedRows, out: &mut [f32]) {
    tiles_with(super::path(), tiles, x, out)
}

/// [`tiles`] through a given path; one the CPU lacks falls back to the portable loop.
#[allow(unsafe_code)]
pub fn tiles_with(path: super::Path, tiles: &[u8], x: &QuantizedRows, out: &mut [f32]) {
    let m = x.rows();
    assert_eq!(x.scheme, super::Scheme::Q8_0, "Q4_0 takes Q8_0 activations");
    assert!(
        m <= MAX_ROWS
            && tiles.len().is_multiple_of(x.blocks * CHUNK)
            && out.len() == tiles.len() / (x.blocks * CHUNK) * TILE_ROWS * m,
        "{m} rows of {} blocks against {} bytes of tiles",
        x.blocks,
        tiles.len()
    );
    match path {
        // SAFETY: AVX-512 (F, BW, VL), AVX512-VNNI, AVX2 and F16C are
        // detected; the tiles are whole and `out` holds their rows (asserted).
        #[cfg(target_arch = "x86_64")]
        super::Path::Vnni if super::super::simd::has_avx512_vnni() => unsafe {
            x86::tiles_vnni(tiles, x, out)
        },
        // SAFETY: AVX2, FMA and F16C are detected; tiles as above.
        #[cfg(target_arch = "x86_64")]
        super::Path::Vnni | super::Path::Avx2 if super::super::simd::has_avx2() => unsafe {
            x86::tiles_avx2(tiles, x, out)
        },
        _ => tiles_plain(tiles, x, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    use super::{QuantizedRows, CHUNK, LANES, MAX_ROWS, TILE_ROWS};

    /// Chunk `b` of a tile (`c`: its first byte) unpacked: the rows' scales
    /// and each piece's low and high nibbles.
    #[inline(always)]
    unsafe fn unpack(c: *const u8) -> (__m256, [__m256i; 4], [__m256i; 4]) {
        let nibbles = _mm256_set1_epi8(0x0f);
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(c.cast()));
        let mut lo = [_mm256_setzero_si256(); 4];
        let mut hi = [_mm256_setzero_si256(); 4];
        for p in 0..4 {
            let w = _mm256_loadu_si256(c.add(16 + 32 * p).cast());
            lo[p] = _mm256_and_si256(w, nibbles);
            hi[p] = _mm256_and_si256(_mm256_srli_epi16(w, 4), nibbles);
        }
        (dw, lo, hi)
    }

    /// An unpacked chunk against activation block `i`: the eight rows' terms
    /// `(dw * dx) * s`.
    #[inline(always)]
    unsafe fn term(
        (dw, lo, hi): &(__m256, [__m256i; 4], [__m256i; 4]),
        x: &QuantizedRows,
        i: usize,
        dot: &impl Fn(__m256i, __m256i, __m256i) -> __m256i,
    ) -> __m256 {
        let q = x.q.as_ptr().add(i) as *const i32;
        let a = |l: usize| _mm256_set1_epi32(q.add(l).read());
        // Two chains, so the products' latency overlaps.
        let mut s0 = dot(_mm256_setzero_si256(), lo[0], a(0));
        let mut s1 = dot(_mm256_setzero_si256(), hi[0], a(4));
        for p in 1..4 {
            s0 = dot(s0, lo[p], a(p));
            s1 = dot(s1, hi[p], a(4 + p));
        }
        let off = _mm256_set1_epi32(8 * *x.sum.as_ptr().add(i));
        let s = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), off);
        let dx = _mm256_set1_ps(*x.d.as_ptr().add(i));
        // Not fused: the portable loop's multiplies and adds.
        _mm256_mul_ps(_mm256_mul_ps(*dw, dx), _mm256_cvtepi32_ps(s))
    }

    /// The lanes' fixed sum, a row per element, stored as rows `t * 8..` of
    /// activation row `r`.
    #[inline(always)]
    unsafe fn store(l: &[__m256; LANES], out: &mut [f32], (t, r, m): (usize, usize, usize)) {
        let v = _mm256_add_ps(
            _mm256_add_ps(_mm256_add_ps(l[0], l[1]), _mm256_add_ps(l[2], l[3])),
            _mm256_add_ps(_mm256_add_ps(l[4], l[5]), _mm256_add_ps(l[6], l[7])),
        );
        let mut rows = [0f32; TILE_ROWS];
        _mm256_storeu_ps(rows.as_mut_ptr(), v);
        for (j, v) in rows.iter().enumerate() {
            out[(t * TILE_ROWS + j) * m + r] = *v;
        }
    }

    /// Every tile against every activation row, `dot(acc, w, a)` adding a
    /// piece's four-byte products per lane.
    #[inline(always)]
    unsafe fn all_tiles(
        tiles: &[u8],
        x: &QuantizedRows,
        out: &mut [f32],
        dot: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
    ) {
        let (blocks, m) = (x.blocks, x.rows());
        for (t, tile) in tiles.chunks_exact(blocks * CHUNK).enumerate() {
            let tile = tile.as_ptr();
            if m == 1 {
                // A single sequence's step: the lanes stay in registers,
                // eight chunks at a time so each lane index is a constant.
                let mut l = [_mm256_setzero_ps(); LANES];
                let whole = blocks / LANES * LANES;
                for g in (0..whole).step_by(LANES) {
                    for (c, l) in l.iter_mut().enumerate() {
                        let u = unpack(tile.add((g + c) * CHUNK));
                        *l = _mm256_add_ps(*l, term(&u, x, g + c, &dot));
                    }
                }
                for b in whole..blocks {
                    let u = unpack(tile.add(b * CHUNK));
                    l[b % LANES] = _mm256_add_ps(l[b % LANES], term(&u, x, b, &dot));
                }
                store(&l, out, (t, 0, 1));
            } else {
                let mut acc = [[_mm256_setzero_ps(); LANES]; MAX_ROWS];
                for b in 0..blocks {
                    let u = unpack(tile.add(b * CHUNK));
                    for (r, l) in acc[..m].iter_mut().enumerate() {
                        l[b % LANES] =
                            _mm256_add_ps(l[b % LANES], term(&u, x, r * blocks + b, &dot));
                    }
                }
                for (r, l) in acc[..m].iter().enumerate() {
                    store(l, out, (t, r, m));
                }
            }
        }
    }

    /// # Safety
    /// AVX-512 (F, BW, VL), AVX512-VNNI, AVX2 and F16C must be available;
    /// `tiles` whole tiles of `x.blocks` chunks, `out` their rows times `x`'s.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn tiles_vnni(tiles: &[u8], x: &QuantizedRows, out: &mut [f32]) {
        all_tiles(tiles, x, out, |acc, w, a| _mm256_dpbusd_epi32(acc, w, a));
    }

    /// # Safety
    /// AVX2, FMA and F16C must be available; arguments as for [`tiles_vnni`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn tiles_avx2(tiles: &[u8], x: &QuantizedRows, out: &mut [f32]) {
        let ones = _mm256_set1_epi16(1);
        all_tiles(tiles, x, out, |acc, w, a| {
            // No saturation: nibbles are at most 15 and |a| at most 127.
            _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones))
        });
    }
}
