//! The integer products for many activation rows: a teacher-forced pass, a
//! prompt's prefill, a scoring chunk's logits under `--dtype q8`.
//!
//! The row kernels ([`super::rows`]) multiply a weight chunk's 32 bytes with
//! an activation block's 32 and reduce the vector across its lanes, once per
//! (weight row, activation row, chunk): the reductions cost more than the
//! products. Here a tile of [`TILE`] weight rows is unpacked once into the
//! layout `vpdpbusd` multiplies without them (four consecutive bytes of each
//! of 16 weight rows per 64-byte vector), and every activation row meets the
//! tile with one broadcast of four activation bytes per product: each vector
//! lane is one weight row's sum. The integer sums and the float order are the
//! parent's (chunk `b` into lane `b % 8`, the lanes summed in a fixed tree),
//! so the results are the row kernels' bits, whatever the number of rows.

use rayon::prelude::*;

use super::tile::{Tile, TILE, TILES_PER_TASK};
use super::{path, rows_with, GgmlDType, Path, QuantizedRows, RowsByScheme, MAX_ROWS};

/// Activation rows from which [`gemm`] beats the row kernels (which a decode
/// step of a few sequences keeps).
pub const GEMM_MIN_ROWS: usize = 8;

thread_local! {
    /// Each thread's unpacked tiles, kept between calls (fresh ones per task
    /// would spend more time zeroing memory than some tasks compute).
    static TILE_SCRATCH: std::cell::RefCell<Vec<Tile>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One weight matrix: `n` rows of `dtype` blocks in `data`, Q4_0 ones
/// repacked eight rows at a time where `tiled` (see q4_0x8).
#[derive(Debug, Clone, Copy)]
pub struct Weight<'a> {
    pub dtype: GgmlDType,
    pub data: &'a [u8],
    pub n: usize,
    pub tiled: bool,
}

/// Whether [`gemm`] has a faster path than the row kernels on this CPU.
pub fn gemm_is_fast() -> bool {
    path() == Path::Vnni
}

/// `out[r * n + j] = W_j · x_r` for each weight (`[m, n]`, row major), all
/// weights' tiles in one parallel pass.
pub fn gemm(weights: &[Weight], x: &RowsByScheme) -> Vec<Vec<f32>> {
    gemm_with(path(), weights, x)
}

/// [`gemm`] for one weight into `out`, its memory reused (a scoring chunk's
/// logits: hundreds of megabytes that need not be mapped afresh each chunk);
/// `x` quantized for the weight's type.
pub fn gemm_into(weight: Weight, x: &QuantizedRows, out: &mut Vec<f32>) {
    if !tiles_into(path(), &[weight], &[x], std::slice::from_mut(out)) {
        *out = products(path(), &[weight], &[x]).swap_remove(0);
    }
}

/// [`gemm`] through a given path: the tiles with AVX512-VNNI, else the row
/// kernels of that path a few activation rows at a time (the same bits).
pub fn gemm_with(path: Path, weights: &[Weight], x: &RowsByScheme) -> Vec<Vec<f32>> {
    let xs: Vec<&QuantizedRows> = weights.iter().map(|w| x.get(w.dtype)).collect();
    let mut outs: Vec<Vec<f32>> = weights.iter().map(|_| Vec::new()).collect();
    if tiles_into(path, weights, &xs, &mut outs) {
        return outs;
    }
    products(path, weights, &xs)
}

/// The row kernels of `path` over weight `i` and its rows `xs[i]`, a few
/// activation rows at a time, as `[m, n]`.
fn products(path: Path, weights: &[Weight], xs: &[&QuantizedRows]) -> Vec<Vec<f32>> {
    let mut outs: Vec<Vec<f32>> = weights
        .iter()
        .zip(xs)
        .map(|(w, x)| vec![0f32; x.rows() * w.n])
        .collect();
    for ((w, out), x) in weights.iter().zip(outs.iter_mut()).zip(xs) {
        let m = x.rows();
        let bytes_per_row = w.data.len() / w.n.max(1);
        let mut part = vec![0f32; w.n * MAX_ROWS];
        for r0 in (0..m).step_by(MAX_ROWS) {
            let rows = x.slice_rows(r0, MAX_ROWS.min(m - r0));
            let mm = rows.rows();
            let part = &mut part[..w.n * mm];
            if w.tiled {
                super::q4_0x8::tiles_with(path, w.data, &rows, part);
            } else {
                rows_with(path, w.dtype, w.data, bytes_per_row, &rows, part);
            }
            for (j, column) in part.chunks_exact(mm).enumerate() {
                for (r, &v) in column.iter().enumerate() {
                    out[(r0 + r) * w.n + j] = v;
                }
            }
        }
    }
    outs
}

/// The tiles' products into `outs` (one per weight, cleared and filled with
/// `[m, n]`); false, with `outs` untouched, where `path` is not VNNI or the
/// CPU lacks it.
#[allow(unsafe_code)]
fn tiles_into(
    path: Path,
    weights: &[Weight],
    xs: &[&QuantizedRows],
    outs: &mut [Vec<f32>],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if path == Path::Vnni && super::super::simd::has_avx512_vnni() {
        let m = xs[0].rows();
        for (out, w) in outs.iter_mut().zip(weights) {
            // Not zeroed: every value is written below (zeroing a large
            // vocabulary's logits costs a tenth of their products).
            out.clear();
            out.reserve(m * w.n);
        }
        // (weight, first row, rows) per task, and each output's address:
        // tasks write disjoint column ranges of the same matrices.
        let mut tasks = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            assert!(
                super::supported(w.dtype),
                "no integer kernel for {:?}",
                w.dtype
            );
            assert!(
                xs[i].scheme == super::Scheme::of(w.dtype) && xs[i].rows() == m,
                "activations for {:?}",
                w.dtype
            );
            for j0 in (0..w.n).step_by(TILE * TILES_PER_TASK) {
                tasks.push((i, j0, (TILE * TILES_PER_TASK).min(w.n - j0)));
            }
        }
        let addresses: Vec<usize> = outs.iter_mut().map(|o| o.as_mut_ptr() as usize).collect();
        tasks.into_par_iter().for_each(|(i, j0, n)| {
            let x = xs[i];
            TILE_SCRATCH.with_borrow_mut(|tiles| {
                if tiles.first().is_none_or(|t| t.dw.len() != x.blocks) {
                    *tiles = (0..TILES_PER_TASK).map(|_| Tile::new(x.blocks)).collect();
                }
                let w = &weights[i];
                let bytes_per_row = w.data.len() / w.n;
                let rows = &w.data[j0 * bytes_per_row..(j0 + n) * bytes_per_row];
                // SAFETY: AVX-512 (F, BW, VL), AVX512-VNNI, AVX2 and F16C are
                // detected. The kernel writes columns j0..j0 + n of the m rows
                // of output i, whose capacity is m * w.n values; no other task
                // writes those columns, and `outs` outlives the parallel loop.
                unsafe {
                    super::gemm_x86::gemm_vnni(
                        (w.dtype, w.tiled),
                        rows,
                        bytes_per_row,
                        x,
                        (addresses[i] as *mut f32).add(j0),
                        w.n,
                        tiles,
                    )
                }
            })
        });
        for (out, w) in outs.iter_mut().zip(weights) {
            // SAFETY: the tasks wrote columns 0..w.n (whole tiles, the last
            // one masked) of all m rows: every value of the capacity reserved above.
            unsafe { out.set_len(m * w.n) };
        }
        return true;
    }
    let _ = (path, weights, xs, outs);
    false
}

impl QuantizedRows {
    /// Rows `r0..r0 + n` on their own.
    pub fn slice_rows(&self, r0: usize, n: usize) -> Self {
        let range = r0 * self.blocks..(r0 + n) * self.blocks;
        Self {
            scheme: self.scheme,
            blocks: self.blocks,
            q: self.q[range.clone()].to_vec(),
            d: self.d[range.clone()].to_vec(),
            lo: self.lo[range.clone()].to_vec(),
            hi: self.hi[range.clone()].to_vec(),
            sum: self.sum[range].to_vec(),
        }
    }
}
