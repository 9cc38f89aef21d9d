//! The decoder's projections and how their weights load: dense (candle's
//! layout and GEMM), packed f32 or bf16 panels (see packed_gemm), or kept
//! quantized (see quantized_linear), each by Hugging Face name.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Module, Tensor};
use candle_nn::{RmsNorm, VarBuilder};

use crate::config::ModelConfig;
use crate::error::Result;
use crate::kernels::packed_gemm::{self, PackedWeight};
pub use crate::kernels::quantized_gemv::Activations;
use crate::models::quantized_linear::{dense_forward_many, gemv_outputs, QuantizedLinear};

/// Weights kept quantized (GGUF with `--dtype q`), by Hugging Face name.
#[derive(Default)]
pub struct QuantizedWeights {
    /// By Hugging Face tensor name.
    pub tensors: HashMap<String, Arc<QTensor>>,
    /// What the products take: f32 activations (`q`) or 8-bit ones with
    /// integer dot products (`q8`).
    pub activations: Activations,
    /// The Q4_0 tensors whose rows are repacked eight at a time for the
    /// integer kernels (quantized_int8::q4_0x8), by Hugging Face name.
    pub tiled: HashSet<String>,
}

impl QuantizedWeights {
    pub fn get(&self, name: &str) -> Option<&Arc<QTensor>> {
        self.tensors.get(name)
    }

    /// Adds a tensor, its rows repacked where `q8`'s Q4_0 kernels read them
    /// so: every projection but the embedding (whose rows are looked up, and
    /// which a tied output projection shares).
    pub fn insert(&mut self, name: String, q: QTensor) -> candle_core::Result<()> {
        use crate::kernels::quantized_int8::q4_0x8;
        use candle_core::quantized::{GgmlDType, QStorage};
        let dims = q.shape().dims().to_vec();
        let q = match dims[..] {
            [n, k]
                if self.activations == Activations::Int8
                    && q.dtype() == GgmlDType::Q4_0
                    && name != "model.embed_tokens.weight"
                    && q4_0x8::repacks(n) =>
            {
                let tiles = q4_0x8::repack(&q.data()?, n, k / 32);
                let device = q.device();
                self.tiled.insert(name.clone());
                let storage =
                    QStorage::from_data(std::borrow::Cow::Owned(tiles), &device, q.dtype())?;
                QTensor::new(storage, (n, k))?
            }
            _ => q,
        };
        self.tensors.insert(name, Arc::new(q));
        Ok(())
    }
}

/// A projection: dense weights, packed f32 or bf16 ones (see [`packs`]), or
/// quantized ones.
pub(super) enum Linear {
    Dense(candle_nn::Linear),
    /// `counted`: false for an output projection tied to the (already counted) embedding.
    Packed {
        weight: Arc<PackedWeight>,
        bias: Option<Tensor>,
        counted: bool,
    },
    /// `counted`: false for an output projection tied to the (already counted) embedding.
    Quantized {
        linear: QuantizedLinear,
        counted: bool,
    },
}

impl Linear {
    /// `x · Wᵀ`; up to `max_rows` rows through the decode kernels.
    pub(super) fn forward(&self, x: &Tensor, max_rows: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Dense(l) => match dense_forward_many(&[l], x, max_rows) {
                Some(ys) => ys?
                    .pop()
                    .ok_or_else(|| candle_core::Error::Msg("no projection output".into())),
                None => l.forward(x),
            },
            Self::Quantized { linear, .. } => linear.forward(x, max_rows),
            Self::Packed { .. } => Self::forward_many([self], x, max_rows).map(|[y]| y),
        }
    }

    /// Several projections of the same input: quantized ones in one pass where possible.
    pub(super) fn forward_many<const N: usize>(
        linears: [&Linear; N],
        x: &Tensor,
        max_rows: usize,
    ) -> candle_core::Result<[Tensor; N]> {
        let quantized: Option<Vec<&QuantizedLinear>> = linears
            .iter()
            .map(|l| match l {
                Self::Quantized { linear, .. } => Some(linear),
                _ => None,
            })
            .collect();
        let dense: Option<Vec<&candle_nn::Linear>> = linears
            .iter()
            .map(|l| match l {
                Self::Dense(linear) => Some(linear),
                _ => None,
            })
            .collect();
        let packed: Option<Vec<(&PackedWeight, Option<&Tensor>)>> = linears
            .iter()
            .map(|l| match l {
                Self::Packed { weight, bias, .. } => Some((&**weight, bias.as_ref())),
                _ => None,
            })
            .collect();
        let fast = match (quantized, dense, packed) {
            (Some(q), _, _) => QuantizedLinear::forward_many(&q, x, max_rows),
            (_, Some(d), _) => dense_forward_many(&d, x, max_rows),
            (_, _, Some(p)) => Some(packed_forward_many(&p, x)),
            _ => None,
        };
        if let Some(outs) = fast {
            let outs = outs?;
            if let Ok(array) = <[Tensor; N]>::try_from(outs) {
                return Ok(array);
            }
        }
        let mut outs = Vec::with_capacity(N);
        for l in linears {
            outs.push(l.forward(x, max_rows)?);
        }
        <[Tensor; N]>::try_from(outs)
            .map_err(|_| candle_core::Error::Msg("projection count mismatch".into()))
    }

    pub(super) fn parameter_count(&self) -> usize {
        match self {
            Self::Dense(l) => l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count()),
            Self::Quantized { linear, counted } => {
                usize::from(*counted) * linear.weight_elems()
                    + linear.bias().map_or(0, |b| b.elem_count())
            }
            Self::Packed {
                weight,
                bias,
                counted,
            } => {
                usize::from(*counted) * weight.n() * weight.k()
                    + bias.as_ref().map_or(0, |b| b.elem_count())
            }
        }
    }
}

/// Packed projections of one input, in one parallel pass (see packed_gemm):
/// the same kernel for any number of rows, so a row's result never depends
/// on the rows beside it.
fn packed_forward_many(
    linears: &[(&PackedWeight, Option<&Tensor>)],
    x: &Tensor,
) -> candle_core::Result<Vec<Tensor>> {
    let weights: Vec<&PackedWeight> = linears.iter().map(|(w, _)| *w).collect();
    let k = weights.first().map_or(1, |w| w.k());
    let rows = x.elem_count() / k.max(1);
    let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let outs = packed_gemm::matmul_many(&weights, &xs, rows);
    gemv_outputs(x, rows, outs, linears.iter().map(|(_, bias)| *bias))
}

/// Whether dense weights loaded this way are packed for the packed kernels:
/// f32 on a CPU that runs a packed f32 kernel (AVX-512, or AVX2 with FMA),
/// bf16 on any CPU (with `vdpbf16ps` where it has AVX512-BF16, widened to
/// f32 in the same order elsewhere).
pub(super) fn packs(vb: &VarBuilder) -> bool {
    vb.device().is_cpu()
        && match vb.dtype() {
            DType::F32 => PackedWeight::available(),
            DType::BF16 => true,
            _ => false,
        }
}

/// The dtype activations are computed in: the weights' own, except that bf16
/// weights packed for the bf16 kernel are multiplied with f32 activations
/// (rounded to bf16 pairs inside the product, outputs summed and kept in
/// f32), so attention, norms and activations run the fused f32 kernels, and
/// the results stand closer to f32 than a model rounded to bf16 throughout.
pub(super) fn compute_dtype(vb: &VarBuilder) -> DType {
    if vb.dtype() == DType::BF16 && packs(vb) {
        DType::F32
    } else {
        vb.dtype()
    }
}

/// A weight `[n, k]` from its tensor, packed straight from the tensor's
/// storage (a copy first would add a third full-size buffer while loading a
/// large vocabulary's embedding).
fn pack(weight: &Tensor) -> Result<Arc<PackedWeight>> {
    use candle_core::{CpuStorage, Storage};
    let (n, k) = weight.dims2()?;
    let weight = weight.contiguous()?;
    let (storage, layout) = weight.storage_and_layout();
    let range = layout.start_offset()..layout.start_offset() + n * k;
    Ok(Arc::new(match &*storage {
        Storage::Cpu(CpuStorage::F32(data)) => PackedWeight::pack(&data[range], n, k),
        Storage::Cpu(CpuStorage::BF16(data)) => {
            use half::slice::HalfFloatSliceExt;
            PackedWeight::pack_bf16(data[range].reinterpret_cast(), n, k)
        }
        _ => {
            return Err(candle_core::Error::Msg(
                "a packed weight must be f32 or bf16 on the CPU".into(),
            )
            .into())
        }
    }))
}

/// Row blocks of a weight, read without materialising the whole tensor:
/// packing a 262,144-row embedding from a full dense copy would hold it twice.
pub trait RowSource {
    /// The shape `[rows, columns]` of the weight `name`, or `None` where this
    /// source cannot give its rows (the loader then reads the whole tensor).
    fn shape(&self, name: &str) -> Option<(usize, usize)>;

    /// Rows `r0 .. r0 + rows` of the f32 weight `name`, row-major: `rows`
    /// times the shape's columns values.
    fn rows(&self, name: &str, r0: usize, rows: usize) -> candle_core::Result<Vec<f32>>;
}

pub(super) struct Weights<'a> {
    pub(super) vb: VarBuilder<'a>,
    pub(super) quantized: Option<&'a QuantizedWeights>,
    pub(super) rows: Option<&'a dyn RowSource>,
    /// The activations' dtype (see [`compute_dtype`]): norms and biases load in it.
    pub(super) compute: DType,
}

impl Weights<'_> {
    pub(super) fn pp(&self, name: impl ToString) -> Self {
        Weights {
            vb: self.vb.pp(name),
            quantized: self.quantized,
            rows: self.rows,
            compute: self.compute,
        }
    }

    /// The weight `name` (`[n, k]`) packed, from row blocks where the source
    /// gives them, else from the whole tensor.
    pub(super) fn packed(&self, name: &str, n: usize, k: usize) -> Result<Arc<PackedWeight>> {
        self.packed_rows(name, (n, 0..n), k)
    }

    /// Rows `part.1` of the weight `name` (`[part.0, k]`) packed.
    pub(super) fn packed_rows(
        &self,
        name: &str,
        (n, rows): (usize, std::ops::Range<usize>),
        k: usize,
    ) -> Result<Arc<PackedWeight>> {
        let full = format!("{}.{name}", self.vb.prefix());
        let full = full.trim_start_matches('.');
        if let Some(source) = self.rows {
            if let Some(shape) = source.shape(full) {
                if shape != (n, k) {
                    return Err(candle_core::Error::UnexpectedShape {
                        msg: format!("shape mismatch for {full}"),
                        expected: (n, k).into(),
                        got: shape.into(),
                    }
                    .into());
                }
                let read = |r0, count| source.rows(full, rows.start + r0, count);
                return Ok(Arc::new(if self.vb.dtype() == DType::BF16 {
                    PackedWeight::pack_rows_bf16(rows.len(), k, read)?
                } else {
                    PackedWeight::pack_rows(rows.len(), k, read)?
                }));
            }
        }
        let weight = self.vb.get((n, k), name)?;
        if rows.len() == n {
            pack(&weight)
        } else {
            pack(&weight.narrow(0, rows.start, rows.len())?)
        }
    }
}

pub(super) fn linear(
    w: &Weights,
    name: &str,
    in_dim: usize,
    out_dim: usize,
    bias: bool,
) -> Result<Linear> {
    linear_part(w, name, in_dim, (out_dim, 0..out_dim), bias)
}

/// Rows `part.1` of the projection `name` whose weight has `part.0` rows: one
/// projection of a fused one (Phi-3's `qkv_proj`, `gate_up_proj`), split on
/// load so the decoder runs it like any other (a quantized weight splits
/// without dequantizing: its rows are whole blocks).
pub(super) fn linear_part(
    w: &Weights,
    name: &str,
    in_dim: usize,
    (total_out, rows): (usize, std::ops::Range<usize>),
    bias: bool,
) -> Result<Linear> {
    // At the root (the untied `lm_head`) the prefix is empty: no leading dot.
    let full = format!("{}.{name}.weight", w.vb.prefix());
    let full = full.trim_start_matches('.');
    let out_dim = rows.len();
    let whole = out_dim == total_out;
    let bias = || -> Result<Option<Tensor>> {
        if !bias {
            return Ok(None);
        }
        let b = w.vb.pp(name).get(total_out, "bias")?.to_dtype(w.compute)?;
        Ok(Some(if whole {
            b
        } else {
            b.narrow(0, rows.start, out_dim)?
        }))
    };
    if let Some((quantized, q)) = w.quantized.and_then(|qw| qw.get(full).map(|q| (qw, q))) {
        let dims = q.shape().dims();
        if dims != [total_out, in_dim] {
            return Err(candle_core::Error::Msg(format!(
                "shape mismatch for {full}: expected [{total_out}, {in_dim}], got {dims:?}"
            ))
            .into());
        }
        let tiled = quantized.tiled.contains(full);
        let linear = if whole && tiled {
            QuantizedLinear::repacked(q.clone(), bias()?, quantized.activations)?
        } else if whole {
            QuantizedLinear::new(q.clone(), bias()?, quantized.activations)?
        } else {
            // Rows of a fused tensor (phi3's qkv) taken in row-major order,
            // and left so.
            let row_major;
            let q = if tiled {
                use candle_core::quantized::QStorage;
                let blocks = in_dim / 32;
                let data =
                    crate::kernels::quantized_int8::q4_0x8::untile(&q.data()?, total_out, blocks);
                let storage =
                    QStorage::from_data(std::borrow::Cow::Owned(data), &q.device(), q.dtype())?;
                row_major = QTensor::new(storage, (total_out, in_dim))?;
                &row_major
            } else {
                &**q
            };
            let order: Vec<usize> = rows.clone().collect();
            let q = crate::loading::gguf::reorder_qtensor_rows(q, &order, &q.device())?;
            QuantizedLinear::new(Arc::new(q), bias()?, quantized.activations)?
        };
        return Ok(Linear::Quantized {
            linear,
            counted: true,
        });
    }
    if packs(&w.vb) {
        let vb = w.pp(name);
        return Ok(Linear::Packed {
            weight: vb.packed_rows("weight", (total_out, rows.clone()), in_dim)?,
            bias: bias()?,
            counted: true,
        });
    }
    let weight = w.vb.pp(name).get((total_out, in_dim), "weight")?;
    let weight = if whole {
        weight
    } else {
        weight.narrow(0, rows.start, out_dim)?.contiguous()?
    };
    Ok(Linear::Dense(candle_nn::Linear::new(weight, bias()?)))
}

/// RMSNorm; Gemma's scales by (1 + weight), folded into the weight here.
pub(super) fn rms_norm(w: &Weights, name: &str, size: usize, cfg: &ModelConfig) -> Result<RmsNorm> {
    let weight = w.vb.pp(name).get(size, "weight")?.to_dtype(w.compute)?;
    let weight = if cfg.switches.norm_weight_offset {
        (weight + 1.0)?
    } else {
        weight
    };
    Ok(RmsNorm::new(weight, cfg.rms_norm_eps))
}
