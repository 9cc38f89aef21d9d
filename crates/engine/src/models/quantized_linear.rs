//! A projection whose weights stay quantized (GGUF with `--dtype q` or `q8`).
//!
//! Under `q`, for a few rows (one generated token) the blocks are read
//! directly: `quantized_gemv` for the ggml types it covers
//! ([`QuantizedLinear::forward_many`], which `forward` also goes through),
//! candle's vec-dot otherwise. For many rows (teacher-forced scoring, prompt
//! prefill) it is not: it runs a dot product per (row, output) with f32
//! activations, far from GEMM speed. There the weight is dequantized tile by
//! tile into f32, in parallel, and each tile multiplied with the dense GEMM, so
//! scoring runs near f32 speed while memory holds the quantized weights plus
//! one tile.
//!
//! Under `q8` the types with an integer kernel (quantized_int8) take it for
//! every number of rows, as llama.cpp does: the activations are quantized to
//! 8 bits once per row, a few rows meet the weight groups in the row kernels
//! and many meet tiles unpacked once (the integer GEMM), so many rows are no
//! longer bound by arithmetic in f32. A row's result does not depend on the
//! other rows, so a decode step, a short pass and a long one give the same
//! bits for the same inputs.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{DType, Module, Tensor};
use rayon::prelude::*;

use crate::kernels::quantized_gemv::Activations;

/// Most input rows a decode step (every sequence's newest token) sends through
/// the block kernels of quantized_gemv; more go to dequantized tiles and GEMM.
pub const DECODE_ROWS: usize = crate::kernels::quantized_gemv::MAX_ROWS;

/// The same limit for every other pass (prefill, scoring). Lower, so a
/// record's scores do not depend on whether a shared prefix was reused: the
/// suffix after a cached prefix and the whole sequence then take the same
/// GEMM unless the suffix is very short (the parity the prefix-reuse tests hold
/// to 1e-5).
pub const PASS_ROWS: usize = 16;

/// Largest f32 tile of a dequantized weight; larger weights (a big vocabulary's
/// output projection) go in several tiles of output rows.
const TILE_BYTES: usize = 32 << 20;

/// `x`'s shape with its last dimension replaced by `n`.
fn with_last_dim(x: &Tensor, n: usize) -> Vec<usize> {
    let mut shape = x.dims().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    shape
}

pub struct QuantizedLinear {
    weight: Arc<QTensor>,
    matmul: QMatMul,
    bias: Option<Tensor>,
    /// What the products take (`q8`: 8-bit activations).
    activations: Activations,
    /// Q4_0 rows repacked eight at a time (quantized_int8::q4_0x8): only
    /// the integer kernels read them, so only `q8` loads them so.
    tiled: bool,
}

impl QuantizedLinear {
    pub fn new(
        weight: Arc<QTensor>,
        bias: Option<Tensor>,
        activations: Activations,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            matmul: QMatMul::from_arc(weight.clone())?,
            weight,
            bias,
            activations,
            tiled: false,
        })
    }

    /// A Q4_0 weight whose rows the loader repacked (see q4_0x8); refused unless the integer kernels take it.
    pub fn repacked(
        weight: Arc<QTensor>,
        bias: Option<Tensor>,
        activations: Activations,
    ) -> candle_core::Result<Self> {
        let mut linear = Self::new(weight, bias, activations)?;
        if !linear.takes_int8() || linear.weight.dtype() != candle_core::quantized::GgmlDType::Q4_0
        {
            candle_core::bail!("repacked Q4_0 rows are read only with 8-bit activations (q8)");
        }
        linear.tiled = true;
        Ok(linear)
    }

    pub fn weight_elems(&self) -> usize {
        self.weight.shape().elem_count()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `x · Wᵀ`; up to `max_rows` rows through the `q` block kernels (any
    /// number through the integer ones, see [`Self::takes_int8`]).
    pub fn forward(&self, x: &Tensor, max_rows: usize) -> candle_core::Result<Tensor> {
        if let Some(ys) = Self::forward_many(&[self], x, max_rows) {
            return ys?
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("no projection output".into()));
        }
        self.row_major()?;
        let (out_dim, in_dim) = self.weight.shape().dims2()?;
        let rows = x.elem_count() / in_dim.max(1);
        let xf = x.to_dtype(DType::F32)?;
        let y = if rows > max_rows && x.device().is_cpu() {
            let out_shape = with_last_dim(x, out_dim);
            let x2 = xf.reshape((rows, in_dim))?;
            let tile_rows = (TILE_BYTES / (4 * in_dim)).clamp(1, out_dim);
            if tile_rows == out_dim {
                let w = self.dequantize_rows(0, out_dim)?;
                x2.matmul(&w.t()?)?.reshape(out_shape)?
            } else {
                let mut y = Vec::new();
                self.tiles_into(&x2, &mut y)?;
                Tensor::from_vec(y, out_shape, x.device())?
            }
        } else {
            self.matmul.forward(&xf)?
        };
        let y = y.to_dtype(x.dtype())?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// Whether the integer kernels take this projection (`q8` and a type they
    /// cover), for every number of rows.
    pub fn takes_int8(&self) -> bool {
        self.activations == Activations::Int8
            && crate::kernels::quantized_int8::supported(self.weight.dtype())
    }

    /// `x · Wᵀ` for f32 rows `x` (`[rows, in]`, no bias) into `out` through the
    /// integer kernels (see [`Self::takes_int8`]).
    pub fn int8_into(&self, x: &Tensor, out: &mut Vec<f32>) -> candle_core::Result<()> {
        use crate::kernels::quantized_int8 as int8;
        let (n, in_dim) = self.weight.shape().dims2()?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let data = self.weight.data()?;
        if int8::gemm_is_fast() {
            let weight = int8::Weight {
                dtype: self.weight.dtype(),
                data: &data,
                n,
                tiled: self.tiled,
            };
            let rows = int8::QuantizedRows::for_weight(weight.dtype, &xs, in_dim);
            int8::gemm_into(weight, &rows, out);
            return Ok(());
        }
        let weight = crate::kernels::quantized_gemv::GemvWeight {
            dtype: self.weight.dtype(),
            data: &data,
            n,
            tiled: self.tiled,
        };
        *out = crate::kernels::quantized_gemv::gemv_many_with(
            &[weight],
            in_dim,
            &xs,
            Activations::Int8,
        )
        .pop()
        .unwrap_or_default();
        Ok(())
    }

    /// `x · Wᵀ` for f32 rows `x` (`[rows, in]`, no bias) into `out`, reusing its
    /// memory, one dequantized tile of output rows at a time. Each tile's
    /// columns go straight into the output: no list of parts and no
    /// concatenation doubling a large vocabulary's logits.
    pub fn tiles_into(&self, x: &Tensor, out: &mut Vec<f32>) -> candle_core::Result<()> {
        self.row_major()?;
        let (out_dim, in_dim) = self.weight.shape().dims2()?;
        let rows = x.dim(0)?;
        let tile_rows = (TILE_BYTES / (4 * in_dim)).clamp(1, out_dim);
        out.clear();
        out.resize(rows * out_dim, 0.0);
        for r0 in (0..out_dim).step_by(tile_rows) {
            let n = tile_rows.min(out_dim - r0);
            let w = self.dequantize_rows(r0, n)?;
            let part = x.matmul(&w.t()?)?.flatten_all()?.to_vec1::<f32>()?;
            for (dst, src) in out.chunks_exact_mut(out_dim).zip(part.chunks_exact(n)) {
                dst[r0..r0 + n].copy_from_slice(src);
            }
        }
        Ok(())
    }

    /// The products of several projections that share the input `x`, in one
    /// parallel pass; `None` where the block kernels do not apply (many rows, a
    /// type they lack, another device), so the caller projects one by one.
    pub fn forward_many(
        linears: &[&QuantizedLinear],
        x: &Tensor,
        max_rows: usize,
    ) -> Option<candle_core::Result<Vec<Tensor>>> {
        let first = linears.first()?;
        let (_, in_dim) = first.weight.shape().dims2().ok()?;
        let rows = x.elem_count() / in_dim.max(1);
        let usable = x.device().is_cpu()
            && (rows <= max_rows.min(DECODE_ROWS) || linears.iter().all(|l| l.takes_int8()))
            && linears.iter().all(|l| {
                crate::kernels::quantized_gemv::block_bytes(l.weight.dtype()).is_some()
                    && in_dim % crate::kernels::quantized_gemv::block_weights(l.weight.dtype()) == 0
                    && l.weight.shape().dims2().is_ok_and(|(_, k)| k == in_dim)
            });
        if !usable {
            return None;
        }
        Some((|| {
            let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let data: Vec<_> = linears
                .iter()
                .map(|l| l.weight.data())
                .collect::<candle_core::Result<_>>()?;
            let weights: Vec<_> = linears
                .iter()
                .zip(&data)
                .map(|(l, d)| crate::kernels::quantized_gemv::GemvWeight {
                    dtype: l.weight.dtype(),
                    data: d,
                    n: l.weight.shape().dims()[0],
                    tiled: l.tiled,
                })
                .collect();
            let outs = crate::kernels::quantized_gemv::gemv_many_with(
                &weights,
                in_dim,
                &xs,
                first.activations,
            );
            let biases = linears.iter().map(|l| l.bias.as_ref());
            gemv_outputs(x, rows, outs, biases)
        })())
    }

    /// An error where the weight's rows are repacked: candle's kernels and the
    /// dequantizing paths read row-major blocks (under `q8` a repacked
    /// weight always takes the integer kernels, so this is not reached).
    fn row_major(&self) -> candle_core::Result<()> {
        if self.tiled {
            candle_core::bail!("a repacked Q4_0 weight reached a row-major kernel");
        }
        Ok(())
    }

    /// Output rows `r0..r0 + n` as a dense f32 `[n, in]` tensor, dequantized in parallel.
    fn dequantize_rows(&self, r0: usize, n: usize) -> candle_core::Result<Tensor> {
        self.row_major()?;
        let (out_dim, in_dim) = self.weight.shape().dims2()?;
        let data = self.weight.data()?;
        let row_bytes = data.len() / out_dim;
        let dtype = self.weight.dtype();
        let device = self.weight.device();
        let pieces = rayon::current_num_threads().clamp(1, n);
        let per = n.div_ceil(pieces);
        let chunks: Vec<Tensor> = (0..n)
            .step_by(per)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|c0| {
                let rows = per.min(n - c0);
                let bytes = &data[(r0 + c0) * row_bytes..(r0 + c0 + rows) * row_bytes];
                let storage = QStorage::from_data(Cow::Borrowed(bytes), &device, dtype)?;
                QTensor::new(storage, (rows, in_dim))?.dequantize(&device)
            })
            .collect::<candle_core::Result<_>>()?;
        if chunks.len() == 1 {
            Ok(chunks.into_iter().next().unwrap_or_else(|| unreachable!()))
        } else {
            Tensor::cat(&chunks, 0)
        }
    }
}

/// The kernel's outputs as tensors shaped like `x` (`rows` rows), in `x`'s
/// dtype, each with its projection's bias.
pub(super) fn gemv_outputs<'b>(
    x: &Tensor,
    rows: usize,
    outs: Vec<Vec<f32>>,
    biases: impl Iterator<Item = Option<&'b Tensor>>,
) -> candle_core::Result<Vec<Tensor>> {
    outs.into_iter()
        .zip(biases)
        .map(|(y, bias)| {
            let shape = with_last_dim(x, y.len() / rows.max(1));
            let y = Tensor::from_vec(y, shape, x.device())?.to_dtype(x.dtype())?;
            match bias {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            }
        })
        .collect()
}

/// The products of dense projections (f32 or f16 weights; bf16 ones are
/// packed, see packed_bf16) that share the input `x`, for a few rows
/// (decoding), through the same kernel as the quantized ones: each weight row
/// is read once for every row of `x` (an f16 one widened in registers, with
/// f32 sums), and a row's result does not depend on the others. `None` where it does not apply (another
/// device, many rows, a width the kernel's blocks do not divide), so the
/// caller uses the GEMM.
pub fn dense_forward_many(
    linears: &[&candle_nn::Linear],
    x: &Tensor,
    max_rows: usize,
) -> Option<candle_core::Result<Vec<Tensor>>> {
    use candle_core::quantized::GgmlDType;
    use candle_core::{CpuStorage, Storage};
    let first = linears.first()?;
    let (_, in_dim) = first.weight().dims2().ok()?;
    let rows = x.elem_count() / in_dim.max(1);
    let dtype = match first.weight().dtype() {
        DType::F32 => GgmlDType::F32,
        DType::F16 => GgmlDType::F16,
        _ => return None,
    };
    let block = crate::kernels::quantized_gemv::block_weights(dtype);
    let usable = x.device().is_cpu()
        && (x.dtype() == DType::F32 || x.dtype() == first.weight().dtype())
        && rows <= max_rows.min(DECODE_ROWS)
        && in_dim % block == 0
        && linears.iter().all(|l| {
            l.weight().dtype() == first.weight().dtype()
                && l.weight().is_contiguous()
                && l.weight().dims2().is_ok_and(|(_, k)| k == in_dim)
        });
    if !usable {
        return None;
    }
    Some((|| {
        let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let guards: Vec<_> = linears
            .iter()
            .map(|l| l.weight().storage_and_layout())
            .collect();
        let mut weights = Vec::with_capacity(linears.len());
        for ((storage, layout), l) in guards.iter().zip(linears) {
            let n = l.weight().dims()[0];
            let (start, end) = (layout.start_offset(), layout.start_offset() + n * in_dim);
            let data: &[u8] = match &**storage {
                Storage::Cpu(CpuStorage::F32(d)) => bytemuck::cast_slice(&d[start..end]),
                Storage::Cpu(CpuStorage::F16(d)) => {
                    use half::slice::HalfFloatSliceExt;
                    bytemuck::cast_slice(d[start..end].reinterpret_cast())
                }
                _ => candle_core::bail!("a dense weight not in CPU f32 or f16 storage"),
            };
            weights.push(crate::kernels::quantized_gemv::GemvWeight::rows(
                dtype, data, n,
            ));
        }
        let outs = crate::kernels::quantized_gemv::gemv_many(&weights, in_dim, &xs);
        gemv_outputs(x, rows, outs, linears.iter().map(|l| l.bias()))
    })())
}

/// The token embedding: dense, or kept in its GGUF blocks with only the looked-up
/// rows dequantized (a 262,144-token vocabulary is 671 MB in f32 for Gemma 3 270M).
pub enum TokenEmbedding {
    Dense(candle_nn::Embedding),
    Quantized(Arc<QTensor>),
    /// Tied to a packed output projection: rows are read from its panels.
    Packed(Arc<crate::kernels::packed_gemm::PackedWeight>),
}

impl TokenEmbedding {
    pub fn elem_count(&self) -> usize {
        match self {
            Self::Dense(e) => e.embeddings().elem_count(),
            Self::Quantized(q) => q.shape().elem_count(),
            Self::Packed(w) => w.n() * w.k(),
        }
    }

    /// Rows `[T, hidden]` of the token ids, in f32 for quantized weights.
    pub fn forward(
        &self,
        ids: &[u32],
        device: &candle_core::Device,
    ) -> candle_core::Result<Tensor> {
        match self {
            Self::Dense(e) => e.forward(&Tensor::from_slice(ids, ids.len(), device)?),
            Self::Quantized(q) => {
                let (rows, hidden) = q.shape().dims2()?;
                let data = q.data()?;
                let row_bytes = data.len() / rows;
                let mut picked = Vec::with_capacity(ids.len() * row_bytes);
                for &id in ids {
                    let id = id as usize;
                    if id >= rows {
                        candle_core::bail!("token id {id} outside the embedding's {rows} rows");
                    }
                    picked.extend_from_slice(&data[id * row_bytes..(id + 1) * row_bytes]);
                }
                let storage = QStorage::from_data(Cow::Owned(picked), device, q.dtype())?;
                QTensor::new(storage, (ids.len(), hidden))?.dequantize(device)
            }
            Self::Packed(w) => {
                let mut rows = Vec::with_capacity(ids.len() * w.k());
                for &id in ids {
                    let id = id as usize;
                    if id >= w.n() {
                        candle_core::bail!("token id {id} outside the embedding's {} rows", w.n());
                    }
                    rows.extend(w.row(id));
                }
                Tensor::from_vec(rows, (ids.len(), w.k()), device)
            }
        }
    }
}
