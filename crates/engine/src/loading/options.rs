//! How a command loads weights: dtype, device, chat template, memory budget.

use candle_core::{DType, Device};

use crate::error::{EngineError, Result};

/// `--dtype`: a float type, GGUF weights kept quantized, or a choice made per model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeChoice {
    Float(DType),
    /// Keep GGUF weights quantized (matrix products on the quantized blocks).
    Quantized,
    /// `q8`: as `Quantized`, and every product quantizes its activations to
    /// 8 bits per block of 32 for integer dot products with Q8_0, Q4_0, Q4_K
    /// and Q6_K blocks (llama.cpp's arithmetic), in decode steps and
    /// teacher-forced passes alike.
    QuantizedInt8,
    /// f32 when every model the command loads fits comfortably in memory, else bf16, else quantized.
    Auto,
}

/// Options every model-loading command shares.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dtype: DTypeChoice,
    pub device: Device,
    /// `--chat-template NAME|FILE`; `None` uses the model's own.
    pub chat_template: Option<String>,
    /// How many models of this size the command holds at once (for `auto`).
    pub models_in_memory: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DTypeChoice::Float(DType::F32),
            device: Device::Cpu,
            chat_template: None,
            models_in_memory: 1,
        }
    }
}

/// Parses `--dtype`.
pub fn parse_dtype(text: &str) -> Result<DTypeChoice> {
    match text {
        "f32" => Ok(DTypeChoice::Float(DType::F32)),
        "bf16" => Ok(DTypeChoice::Float(DType::BF16)),
        "f16" => Ok(DTypeChoice::Float(DType::F16)),
        "q" => Ok(DTypeChoice::Quantized),
        "q8" => Ok(DTypeChoice::QuantizedInt8),
        "auto" => Ok(DTypeChoice::Auto),
        other => Err(EngineError::option(
            crate::LoadSetting::Dtype,
            format!("unknown dtype `{other}`; use auto, f32, bf16, f16, q or q8"),
        )),
    }
}

/// Parses `--device cpu|cuda[:N]`.
pub fn parse_device(text: &str) -> Result<Device> {
    let ordinal = match text {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match text.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(EngineError::option(
                    crate::LoadSetting::Device,
                    format!("unknown device `{text}`; use cpu, cuda or cuda:N"),
                ))
            }
        },
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(EngineError::option(crate::LoadSetting::Device,
            format!("`{text}` needs a build with CUDA support: rebuild with `cargo build --release --features cuda`"),
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| {
        EngineError::option(
            crate::LoadSetting::Device,
            format!("cannot open `{text}`: {e}"),
        )
    })
}
