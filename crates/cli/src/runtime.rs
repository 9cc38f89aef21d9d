//! The runtime flags every model-loading command shares, as library values.

use aligntds_analysis::settings::DeviceChoice;
use aligntds_engine::{DType, DTypeChoice};
use anyhow::Result;

use crate::args::DtypeArg;

pub fn dtype(arg: DtypeArg) -> DTypeChoice {
    match arg {
        DtypeArg::Auto => DTypeChoice::Auto,
        DtypeArg::F32 => DTypeChoice::Float(DType::F32),
        DtypeArg::Bf16 => DTypeChoice::Float(DType::BF16),
        DtypeArg::F16 => DTypeChoice::Float(DType::F16),
        DtypeArg::Q => DTypeChoice::Quantized,
        DtypeArg::Q8 => DTypeChoice::QuantizedInt8,
    }
}

/// Parses `--device cpu|cuda|cuda:N`.
pub fn device(text: &str) -> Result<DeviceChoice, String> {
    DeviceChoice::parse(text)
}

/// Sizes the thread pools before anything runs on them.
pub fn threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "option `--threads`: must be at least 1");
        // candle's matrix kernels read RAYON_NUM_THREADS; our own loops use the global pool.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        aligntds_engine::set_threads(n).map_err(|e| anyhow::anyhow!("option `--threads`: {e}"))?;
    } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Without it candle counts physical cores from /proc/cpuinfo on every matrix product.
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    Ok(())
}

/// The server flags as the library's options.
pub fn server_options(
    args: &crate::args::ServerTuning,
) -> aligntds_analysis::backend::vllm::ServerOptions {
    aligntds_analysis::backend::vllm::ServerOptions {
        max_in_flight: args.max_in_flight,
        request_timeout: std::time::Duration::from_secs(args.request_timeout.max(1)),
        retry_window: std::time::Duration::from_secs(args.retry_window),
    }
}

/// The sampling flags as a study's settings (None: greedy, when no
/// sampling flag is given; unset ones take their defaults).
pub fn sampling_settings(
    args: &crate::args::SamplingArgs,
) -> Option<aligntds_analysis::settings::SamplingSettings> {
    aligntds_analysis::settings::sampling::from_values(
        args.temperature,
        args.top_p,
        args.top_k_sampling,
        args.seed,
    )
}

/// The sampling flags as the engine's sampling of a sequence named by
/// `parts` (None: greedy, when no sampling flag is given), checked as a
/// study checks them.
pub fn sampling(
    args: &crate::args::SamplingArgs,
    parts: &[&[u8]],
) -> Result<Option<aligntds_engine::Sampling>> {
    let Some(s) = sampling_settings(args) else {
        return Ok(None);
    };
    anyhow::ensure!(
        args.top_k_sampling != Some(0),
        "option `--top-k-sampling`: must be at least 1"
    );
    aligntds_analysis::settings::sampling::check(Some(&s)).map_err(|e| {
        let flag = crate::errors::flag(e.field, crate::errors::Flags::Model);
        anyhow::anyhow!("option `{flag}`: {}", e.message)
    })?;
    Ok(Some(aligntds_engine::Sampling {
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        stream: aligntds_engine::Sampling::stream(s.seed, parts),
    }))
}
