//! Dense f32 projections with their weights packed once, at load, into column
//! panels: one kernel for every number of rows, from one generated token to a
//! whole scored answer.
//!
//! Why: candle's GEMM re-packs the weight on every call (about 7 % of f32
//! scoring), and decoding went through a second kernel whose dot products
//! end in horizontal sums. Here each output `(r, c)` is one chain of fused
//! multiply-adds over `k` in order, in one lane: its value does not depend on
//! how many rows share the pass, which rows they are, or how the work is split
//! between threads. A decode step, a packed scoring pass and a suffix after a
//! reused prefix all compute a row's projections to the same bits.
//!
//! Layout: panel `p` holds output columns `p * NR .. p * NR + NR` as `[k][NR]`
//! (the last panel padded with zero columns), so the kernel reads a panel
//! front to back while broadcasting one activation per row and step. A bf16
//! weight is packed the same way in pairs of `k` (see packed_bf16).

use rayon::prelude::*;

use super::{packed_bf16, packed_f32};

use super::panels::{interleave_rows, NR};

/// A weight `[n, k]` (output rows of `k` inputs) in column panels.
pub struct PackedWeight {
    n: usize,
    k: usize,
    panels: Panels,
}

/// The panels' values: f32, or bf16 pairs (see packed_bf16).
#[derive(PartialEq)]
enum Panels {
    F32(Vec<f32>),
    Bf16(Vec<u32>),
}

impl PackedWeight {
    /// Whether this CPU runs a packed kernel (AVX-512F, or AVX2 with FMA:
    /// the same chains, so the same bits); elsewhere projections keep
    /// candle's layout and GEMM.
    pub fn available() -> bool {
        packed_f32::path() != packed_f32::Path::Portable
    }

    /// Packs the row-major weight `w` (`n` rows of `k`).
    pub fn pack(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(
            w.len(),
            n * k,
            "weight of {} values is not {n} x {k}",
            w.len()
        );
        let mut panels = vec![0f32; n.div_ceil(NR) * k * NR];
        fill_panels(w, n, k, &mut panels);
        Self {
            n,
            k,
            panels: Panels::F32(panels),
        }
    }

    /// Packs the row-major bf16 weight `w` (`n` rows of `k`, as bits) in pairs.
    pub fn pack_bf16(w: &[u16], n: usize, k: usize) -> Self {
        assert_eq!(
            w.len(),
            n * k,
            "weight of {} values is not {n} x {k}",
            w.len()
        );
        let mut panels = vec![0u32; n.div_ceil(NR) * packed_bf16::pair_count(k) * NR];
        packed_bf16::fill_pair_panels(w, n, k, &mut panels);
        Self {
            n,
            k,
            panels: Panels::Bf16(panels),
        }
    }

    /// [`Self::pack_rows`] for a bf16 weight whose rows come in f32 (a GGUF
    /// file's), rounded to bf16 as a bf16 load rounds them.
    pub fn pack_rows_bf16<E>(
        n: usize,
        k: usize,
        mut rows: impl FnMut(usize, usize) -> Result<Vec<f32>, E>,
    ) -> Result<Self, E> {
        let k2 = packed_bf16::pair_count(k);
        let per_block = ((8 << 20) / (4 * k2 * NR).max(1)).max(1);
        let mut panels = vec![0u32; n.div_ceil(NR) * k2 * NR];
        for (b, chunk) in panels.chunks_mut(per_block * k2 * NR).enumerate() {
            let r0 = b * per_block * NR;
            let count = (per_block * NR).min(n - r0);
            let block = rows(r0, count)?;
            assert_eq!(block.len(), count * k, "rows {r0}.. of a {n} x {k} weight");
            let bits: Vec<u16> = block.iter().map(|&v| packed_bf16::bf16_bits(v)).collect();
            packed_bf16::fill_pair_panels(&bits, count, k, chunk);
        }
        Ok(Self {
            n,
            k,
            panels: Panels::Bf16(panels),
        })
    }

    /// Packs a weight read in row blocks: `rows(r0, count)` gives rows
    /// `r0 .. r0 + count` row-major. Only one block is held besides the
    /// panels, so a large weight is never in memory twice.
    pub fn pack_rows<E>(
        n: usize,
        k: usize,
        rows: impl FnMut(usize, usize) -> Result<Vec<f32>, E>,
    ) -> Result<Self, E> {
        // Panels per block: about 8 MB of rows.
        Self::pack_row_blocks(n, k, ((8 << 20) / (4 * k * NR).max(1)).max(1), rows)
    }

    fn pack_row_blocks<E>(
        n: usize,
        k: usize,
        per_block: usize,
        mut rows: impl FnMut(usize, usize) -> Result<Vec<f32>, E>,
    ) -> Result<Self, E> {
        let mut panels = vec![0f32; n.div_ceil(NR) * k * NR];
        for (b, chunk) in panels.chunks_mut(per_block * k * NR).enumerate() {
            let r0 = b * per_block * NR;
            let count = (per_block * NR).min(n - r0);
            let block = rows(r0, count)?;
            assert_eq!(block.len(), count * k, "rows {r0}.. of a {n} x {k} weight");
            fill_panels(&block, count, k, chunk);
        }
        Ok(Self {
            n,
            k,
            panels: Panels::F32(panels),
        })
    }

    /// Output rows.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Inputs per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Weight row `j` (`k` values, bf16 ones widened), as a token embedding looks it up.
    pub fn row(&self, j: usize) -> Vec<f32> {
        match &self.panels {
            Panels::F32(panels) => {
                let (p, c) = (j / NR, j % NR);
                let panel = &panels[p * self.k * NR..(p + 1) * self.k * NR];
                (0..self.k).map(|i| panel[i * NR + c]).collect()
            }
            Panels::Bf16(panels) => packed_bf16::row(panels, self.k, j),
        }
    }

    /// `x · Wᵀ` for `m` rows of `x` (`[m, k]`): `[m, n]`.
    #[cfg(test)]
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut outs = matmul_many(&[self], x, m);
        outs.pop().unwrap_or_default()
    }
}

/// Writes row-major rows `w` (`n` of `k`) into zeroed panels, in parallel.
fn fill_panels(w: &[f32], n: usize, k: usize, panels: &mut [f32]) {
    panels
        .par_chunks_mut(k * NR)
        .enumerate()
        .for_each(|(p, panel)| {
            let cols = NR.min(n.saturating_sub(p * NR));
            for c in 0..cols {
                let row = &w[(p * NR + c) * k..(p * NR + c + 1) * k];
                for (i, &v) in row.iter().enumerate() {
                    panel[i * NR + c] = v;
                }
            }
        });
}

/// A raw output pointer shared by the tasks of one product; each task writes
/// its own panel's columns only.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint column ranges of buffers that outlive the
// parallel loop (see `matmul_many`).
#[allow(unsafe_code)]
unsafe impl Send for Out {}
#[allow(unsafe_code)]
unsafe impl Sync for Out {}

/// The products of several weights that share the input `x` (`[m, k]`), in one
/// parallel pass over all their panels: `[m, n]` for each weight, in order.
pub fn matmul_many(weights: &[&PackedWeight], x: &[f32], m: usize) -> Vec<Vec<f32>> {
    let mut outs: Vec<Vec<f32>> = weights.iter().map(|_| Vec::new()).collect();
    let mut refs: Vec<&mut Vec<f32>> = outs.iter_mut().collect();
    products(weights, x, m, &mut refs);
    outs
}

impl PackedWeight {
    /// `x · Wᵀ` for `m` rows of `x` into `out` (`[m, n]`), reusing its memory:
    /// a scoring pass's logits go where their log-probabilities will be.
    pub fn matmul_into(&self, x: &[f32], m: usize, out: &mut Vec<f32>) {
        products(&[self], x, m, &mut [out]);
    }
}

/// The products of `weights` with `x` into `outs` (one each, resized to
/// `[m, n]`), in one parallel pass over all panels.
#[allow(unsafe_code)]
fn products(weights: &[&PackedWeight], x: &[f32], m: usize, outs: &mut [&mut Vec<f32>]) {
    let Some(k) = weights.first().map(|w| w.k) else {
        return;
    };
    assert!(
        weights.iter().all(|w| w.k == k) && x.len() == m * k && outs.len() == weights.len(),
        "products of a shared input need one width"
    );
    // Not zeroed first: every value is written below (zeroing was 3 % of scoring).
    let ptrs: Vec<Out> = outs
        .iter_mut()
        .zip(weights)
        .map(|(o, w)| {
            o.clear();
            o.reserve(m * w.n);
            Out(o.spare_capacity_mut().as_mut_ptr().cast())
        })
        .collect();
    let tasks: Vec<(usize, usize)> = weights
        .iter()
        .enumerate()
        .flat_map(|(i, w)| (0..w.n.div_ceil(NR)).map(move |p| (i, p)))
        .collect();
    // The activations in the kernels' order (panels::interleave_rows), once
    // per product: as f32 for f32 panels, as bf16 pairs for bf16 panels.
    let k2 = packed_bf16::pair_count(k);
    let pairs = weights
        .iter()
        .any(|w| matches!(w.panels, Panels::Bf16(_)))
        .then(|| packed_bf16::activation_pairs(x, m, k));
    let xp = weights
        .iter()
        .any(|w| matches!(w.panels, Panels::F32(_)))
        .then(|| interleave_rows(x, m, k));
    // Panels per task: enough work (about 2^18 multiply-adds) that handing a
    // task to a thread costs little next to it, as in a one-row decode step.
    let per_task = (1usize << 18).div_ceil(m.max(1) * k.max(1) * NR);
    tasks
        .into_par_iter()
        .with_min_len(per_task)
        .for_each(|(i, p)| {
            let w = weights[i];
            let cols = NR.min(w.n - p * NR);
            // SAFETY: the buffer has room for `m * w.n` values and this task
            // writes columns `p * NR .. p * NR + cols` of each row, which no
            // other task writes; the buffers outlive every task.
            let out = unsafe { ptrs[i].0.add(p * NR) };
            match (&w.panels, &pairs, &xp) {
                (Panels::F32(panels), _, Some(xp)) => {
                    let panel = &panels[p * k * NR..(p + 1) * k * NR];
                    // SAFETY: as above.
                    unsafe { packed_f32::panel_product(xp, m, k, panel, out, w.n, cols) };
                }
                (Panels::Bf16(panels), Some(pairs), _) => {
                    let panel = &panels[p * k2 * NR..(p + 1) * k2 * NR];
                    // SAFETY: as above.
                    unsafe { packed_bf16::panel_product(pairs, m, k2, panel, out, w.n, cols) };
                }
                _ => unreachable!("activations are packed for every kind of panel"),
            }
        });
    for (out, w) in outs.iter_mut().zip(weights) {
        // SAFETY: the tasks above wrote all `m * w.n` values (every panel's
        // columns of every row), within the capacity reserved for them.
        unsafe { out.set_len(m * w.n) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(n: usize, k: usize) -> Vec<f32> {
        (0..n * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn input(m: usize, k: usize) -> Vec<f32> {
        (0..m * k)
            .map(|i| ((i * 31) % 17) as f32 * 0.1 - 0.8)
            .collect()
    }

    /// The packed product of `x` (`m` rows) against f64 sums of the weight
    /// `w` (`n` rows of `k`) within `tolerance` (relative), and the packed
    /// rows read back as `w`.
    pub(super) fn products_match_f64(
        packed: &PackedWeight,
        w: &[f32],
        x: &[f32],
        (n, k, m): (usize, usize, usize),
        tolerance: f64,
    ) {
        let out = packed.matmul(x, m);
        for r in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|i| w[j * k + i] as f64 * x[r * k + i] as f64)
                    .sum();
                let got = out[r * n + j] as f64;
                assert!(
                    (got - want).abs() < tolerance * want.abs().max(1.0),
                    "{n}x{k}, m {m}: ({r}, {j}) {got} vs {want}"
                );
            }
        }
        for j in 0..n {
            assert_eq!(packed.row(j), w[j * k..(j + 1) * k], "row {j}");
        }
    }

    #[test]
    fn products_match_f64_sums_for_ragged_shapes() {
        for (n, k, m) in [(7, 5, 1), (33, 64, 13), (70, 96, 25), (32, 3, 12)] {
            let (w, x) = (weight(n, k), input(m, k));
            products_match_f64(&PackedWeight::pack(&w, n, k), &w, &x, (n, k, m), 1e-4);
        }
    }

    #[test]
    fn packing_in_row_blocks_equals_packing_the_whole_weight() {
        let (n, k) = (70, 24);
        let w = weight(n, k);
        let whole = PackedWeight::pack(&w, n, k);
        let mut asked = Vec::new();
        let blocks = PackedWeight::pack_row_blocks(n, k, 1, |r0, rows| {
            asked.push((r0, rows));
            Ok::<_, ()>(w[r0 * k..(r0 + rows) * k].to_vec())
        })
        .unwrap_or_else(|()| unreachable!());
        assert_eq!(asked, [(0, 32), (32, 32), (64, 6)]);
        assert!(blocks.panels == whole.panels);
    }

    #[test]
    fn a_row_gets_the_same_bits_whatever_rows_share_its_pass() {
        let (n, k, m) = (70, 96, 29);
        let (w, x) = (weight(n, k), input(m, k));
        let packed = PackedWeight::pack(&w, n, k);
        let all = packed.matmul(&x, m);
        for r in 0..m {
            let alone = packed.matmul(&x[r * k..(r + 1) * k], 1);
            assert_eq!(alone, all[r * n..(r + 1) * n], "row {r} alone");
        }
        // A suffix of the rows, as after a reused prefix.
        let tail = packed.matmul(&x[5 * k..], m - 5);
        assert_eq!(tail, all[5 * n..]);
        // Two weights in one pass equal each alone.
        let other = PackedWeight::pack(&weight(40, k)[..], 40, k);
        let both = matmul_many(&[&packed, &other], &x, m);
        assert_eq!(both[0], all);
        assert_eq!(both[1], other.matmul(&x, m));
    }
}

/// The bf16 pair panels through the packed weight (see packed_bf16).
#[cfg(test)]
mod bf16_tests {
    use super::packed_bf16::tests::bf16_values;
    use super::packed_bf16::{bf16_bits, widen};
    use super::tests::products_match_f64;
    use super::{matmul_many, PackedWeight};

    fn pack(w: &[f32], n: usize, k: usize) -> PackedWeight {
        let bits: Vec<u16> = w.iter().map(|&v| bf16_bits(v)).collect();
        PackedWeight::pack_bf16(&bits, n, k)
    }

    #[test]
    fn products_match_f64_sums_for_ragged_shapes_and_odd_widths() {
        for (n, k, m) in [(7, 5, 1), (33, 64, 13), (70, 97, 25), (32, 3, 12)] {
            let (w, x) = (bf16_values(n * k, 1), bf16_values(m * k, 2));
            products_match_f64(&pack(&w, n, k), &w, &x, (n, k, m), 1e-5);
        }
    }

    #[test]
    fn a_row_gets_the_same_bits_whatever_rows_share_its_pass() {
        let (n, k, m) = (70, 96, 29);
        let (w, x) = (bf16_values(n * k, 5), bf16_values(m * k, 6));
        let packed = pack(&w, n, k);
        let all = packed.matmul(&x, m);
        for r in 0..m {
            let alone = packed.matmul(&x[r * k..(r + 1) * k], 1);
            assert_eq!(alone, all[r * n..(r + 1) * n], "row {r} alone");
        }
        // With an f32 weight in the same pass, each equals its product alone.
        let other = PackedWeight::pack(&bf16_values(40 * k, 7), 40, k);
        let both = matmul_many(&[&packed, &other], &x, m);
        assert_eq!(both[0], all);
        assert_eq!(both[1], other.matmul(&x, m));
    }

    #[test]
    fn packing_f32_rows_rounds_them_to_bf16() {
        let (n, k) = (70, 24);
        let raw: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.013).sin()).collect();
        let rounded: Vec<f32> = raw.iter().map(|&v| widen(bf16_bits(v))).collect();
        let from_rows = PackedWeight::pack_rows_bf16(n, k, |r0, rows| {
            Ok::<_, ()>(raw[r0 * k..(r0 + rows) * k].to_vec())
        })
        .unwrap_or_else(|()| unreachable!());
        for j in 0..n {
            assert_eq!(from_rows.row(j), rounded[j * k..(j + 1) * k], "row {j}");
        }
    }
}
