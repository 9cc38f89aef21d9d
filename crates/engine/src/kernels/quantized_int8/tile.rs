//! The GEMM's unpacked weight tiles (see gemm.rs), shared by the driver and
//! the micro-kernel.

use super::q4_0x8::{self, TILE_ROWS};
use super::{chunk, GgmlDType};

/// Weight rows per unpacked tile: one 16-lane vector of i32 sums.
pub const TILE: usize = 16;

/// Tiles per parallel task, unpacked together (their rows' outputs side by
/// side): enough work per task that the hand-offs stay small, enough tasks
/// that every core stays busy on a narrow projection.
pub const TILES_PER_TASK: usize = 4;

/// Four bytes of each of [`TILE`] weight rows, one vector load.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct Quad(pub [u8; 4 * TILE]);

/// [`TILE`] weight rows unpacked: chunk `b`'s bytes `4q..4q+4` of every row
/// in `w[8b + q]`, and per chunk each row's scales and multipliers (see
/// [`super::Chunk`]). Rows past the matrix's end are zero.
pub struct Tile {
    pub w: Vec<Quad>,
    pub dw: Vec<[f32; TILE]>,
    pub dmin: Vec<[f32; TILE]>,
    pub a: Vec<[i32; TILE]>,
    pub b: Vec<[i32; TILE]>,
}

impl Tile {
    pub fn new(chunks: usize) -> Self {
        Self {
            w: vec![Quad([0; 4 * TILE]); chunks * 8],
            dw: vec![[0.0; TILE]; chunks],
            dmin: vec![[0.0; TILE]; chunks],
            a: vec![[0; TILE]; chunks],
            b: vec![[0; TILE]; chunks],
        }
    }

    /// Unpacks up to [`TILE`] whole weight rows (`bytes_per_row` each);
    /// `tiled`: Q4_0 rows repacked eight at a time (see q4_0x8).
    #[inline(always)]
    pub fn fill(&mut self, dtype: GgmlDType, rows: &[u8], bytes_per_row: usize, tiled: bool) {
        let n = rows.len() / bytes_per_row;
        if n < TILE {
            // Zero weights and scales: the missing rows' sums are zero and dropped.
            self.w.fill(Quad([0; 4 * TILE]));
            self.dw.fill([0.0; TILE]);
            self.dmin.fill([0.0; TILE]);
            self.a.fill([0; TILE]);
            self.b.fill([0; TILE]);
        }
        for r in 0..n {
            let row = &rows[r * bytes_per_row..][..bytes_per_row];
            for b in 0..self.dw.len() {
                let c = if tiled {
                    let tile = &rows[r / TILE_ROWS * TILE_ROWS * bytes_per_row..];
                    chunk(dtype, &q4_0x8::block(tile, b, r % TILE_ROWS), 0)
                } else {
                    chunk(dtype, row, b)
                };
                for q in 0..8 {
                    self.w[8 * b + q].0[4 * r..4 * r + 4].copy_from_slice(&c.v[4 * q..4 * q + 4]);
                }
                self.dw[b][r] = c.dw;
                self.dmin[b][r] = c.dmin;
                self.a[b][r] = c.a;
                self.b[b][r] = c.b;
            }
        }
    }
}
