//! CPU kernels: the arithmetic under the decoder and the per-row work, apart
//! from the architectures that call them. Each is written so the compiler
//! vectorises it, compiled again for AVX2 and AVX-512 and chosen at run time
//! (`simd::widest!`), and tested in its file against a plain definition.
//!
//! - `simd`: the runtime dispatch macro and CPU feature checks.
//! - `fastmath`: branch-free exp, ln and tanh, lane-wise max and sums.
//! - `cpu_ops`: fused attention softmax and gated activations (candle custom ops).
//! - `packed_gemm`: dense projections over weights packed once at load, with
//!   the f32 panel kernels in `packed_f32` (AVX-512, AVX2) and bf16 in `packed_bf16`.
//! - `quantized_gemv`, `dense_gemv`: decode-time products straight from GGUF
//!   blocks or dense rows, for a few rows at a time; `quantized_int8`: the
//!   same products with activations quantized to 8 bits (`--dtype q8`), and
//!   for many rows its GEMM over unpacked tiles (the same bits);
//!   `ggml_blocks`: the block-layout pieces both share.

pub(crate) mod cpu_ops;
pub(crate) mod dense_gemv;
pub(crate) mod fastmath;
mod ggml_blocks;
pub(crate) mod packed_bf16;
mod packed_f32;
pub(crate) mod packed_gemm;
mod panels;
pub(crate) mod quantized_gemv;
pub(crate) mod quantized_int8;
pub(crate) mod simd;
