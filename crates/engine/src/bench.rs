//! Throughput measurements of the two jobs a TDS study runs: teacher-forced
//! scoring (one forward pass plus the log-softmax of every position) and greedy
//! generation with the KV cache. `aligntds bench` and `scripts/bench.sh` use
//! them; the peers in `scripts/bench_peers.py` use the same token ids.

use std::time::Instant;

use crate::error::Result;
use crate::generation::generate::GenerateOptions;
use crate::model::LanguageModel;

/// The prompt generation starts from.
pub const PROMPT: &str = "The three primary colors are";

/// Best wall time of several runs of `tokens` tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub tokens: usize,
    pub best_seconds: f64,
}

impl Throughput {
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.best_seconds.max(1e-12)
    }
}

/// A deterministic pseudo-random sequence (xorshift64) of ids below `vocab`.
pub fn pseudo_random_tokens(n: usize, vocab: usize) -> Vec<u32> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab.max(1) as u64) as u32
        })
        .collect()
}

fn best_of(repeats: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    // One unmeasured warm-up run, then the best of `repeats`.
    run()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        run()?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Scores `tokens` pseudo-random tokens: the forward pass and the full-vocabulary log-softmax.
pub fn score(model: &LanguageModel, tokens: usize, repeats: usize) -> Result<Throughput> {
    let ids = pseudo_random_tokens(tokens.max(2), model.text.tokenizer.vocab_size());
    let best_seconds = best_of(repeats, || {
        let mut checksum = 0f64;
        model.score(&ids, 1, |rows| {
            for (pos, row) in rows.rows() {
                checksum += row[ids[pos] as usize] as f64;
            }
            Ok(())
        })?;
        std::hint::black_box(checksum);
        Ok(())
    })?;
    Ok(Throughput {
        tokens: ids.len(),
        best_seconds,
    })
}

/// Generates `tokens` tokens greedily after [`PROMPT`], never stopping early;
/// with `batch` above 1, that many sequences decoded together (prompts
/// numbered "1. ", "2. ", ... before [`PROMPT`]), `tokens` each.
pub fn generate(
    model: &LanguageModel,
    tokens: usize,
    batch: usize,
    repeats: usize,
) -> Result<Throughput> {
    let options = GenerateOptions {
        max_new_tokens: tokens,
        stop_strings: vec![],
        eos_token_ids: vec![u32::MAX],
        cancel: Default::default(),
        sampling: None,
    };
    let mut produced = 0;
    let best_seconds = if batch <= 1 {
        let prompt = model.text.tokenizer.encode(PROMPT)?;
        best_of(repeats, || {
            produced = model.generate(&prompt, &options)?.tokens.len();
            Ok(())
        })?
    } else {
        let prompts = (1..=batch)
            .map(|i| model.text.tokenizer.encode(&format!("{i}. {PROMPT}")))
            .collect::<Result<Vec<_>>>()?;
        best_of(repeats, || {
            produced = 0;
            for generation in model.generate_batch(&prompts, &options, batch)? {
                produced += generation?.tokens.len();
            }
            Ok(())
        })?
    };
    Ok(Throughput {
        tokens: produced,
        best_seconds,
    })
}

/// Speeds of one dense f32 projection `[m, k] · [n, k]ᵀ`, in GFLOP/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectionSpeed {
    /// The packed kernel this CPU runs (under `ALIGNTDS_CPU`).
    pub packed: f64,
    /// candle's GEMM, which projections use where no packed kernel runs.
    pub candle: f64,
    /// The packed kernel over the same weight rounded to bf16 (pair panels).
    pub packed_bf16: f64,
}

/// Times one f32 projection of `m` rows through the packed kernel and through
/// candle's GEMM (what a CPU without one runs), the best of `repeats` runs
/// after a warm-up each, on deterministic values.
pub fn projection(m: usize, n: usize, k: usize, repeats: usize) -> Result<ProjectionSpeed> {
    use crate::kernels::packed_gemm::{matmul_many, PackedWeight};
    use candle_core::{Device, Tensor};
    let values = |count: usize, seed: usize| -> Vec<f32> {
        (0..count)
            .map(|i| ((i * 7919 + seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    };
    let (w, x) = (values(n * k, 1), values(m * k, 2));
    let flops = (2 * m * n * k) as f64;
    let packed = PackedWeight::pack(&w, n, k);
    let packed_seconds = best_of(repeats, || {
        std::hint::black_box(matmul_many(&[&packed], &x, m));
        Ok(())
    })?;
    drop(packed);
    let bits: Vec<u16> = w
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_bits())
        .collect();
    let packed = PackedWeight::pack_bf16(&bits, n, k);
    drop(bits);
    let bf16_seconds = best_of(repeats, || {
        std::hint::black_box(matmul_many(&[&packed], &x, m));
        Ok(())
    })?;
    drop(packed);
    let (wt, xt) = (
        Tensor::from_vec(w, (n, k), &Device::Cpu)?,
        Tensor::from_vec(x, (m, k), &Device::Cpu)?,
    );
    let candle_seconds = best_of(repeats, || {
        std::hint::black_box(xt.matmul(&wt.t()?)?);
        Ok(())
    })?;
    Ok(ProjectionSpeed {
        packed: flops / packed_seconds / 1e9,
        candle: flops / candle_seconds / 1e9,
        packed_bf16: flops / bf16_seconds / 1e9,
    })
}

/// Speeds of one quantized projection `[m, k] · [n, k]ᵀ` from GGUF blocks, in
/// GB/s of weight blocks read (the bound of a decode step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizedSpeed {
    /// f32 activations against the blocks (`--dtype q`).
    pub exact: f64,
    /// Activations quantized to 8 bits, integer dot products (`--dtype q8`).
    pub int8: f64,
}

/// Random blocks of `dtype` for `n` rows of `k` (values are random bytes, so
/// only speeds mean anything) and `m` activation rows.
fn random_projection(
    dtype: candle_core::quantized::GgmlDType,
    m: usize,
    n: usize,
    k: usize,
) -> Result<(Vec<u8>, Vec<f32>)> {
    use crate::kernels::quantized_gemv::{block_bytes, block_weights};
    let bb = block_bytes(dtype).ok_or_else(|| {
        crate::error::EngineError::Input(format!("no block kernel for {dtype:?}"))
    })?;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data: Vec<u8> = (0..n * (k / block_weights(dtype)) * bb)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Each block's two scale bytes make a small positive f16 (0x2000..0x20ff).
            match i % bb {
                1 => 0x20,
                _ => state as u8,
            }
        })
        .collect();
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Ok((data, x))
}

/// Times one projection of `m` rows over random blocks of `dtype` (Q8_0,
/// Q4_0, Q4_K, Q6_K) both ways, the best of `repeats` runs after a warm-up each.
pub fn quantized_projection(
    dtype: candle_core::quantized::GgmlDType,
    m: usize,
    n: usize,
    k: usize,
    repeats: usize,
) -> Result<QuantizedSpeed> {
    use crate::kernels::quantized_gemv::{gemv_many_with, Activations, GemvWeight};
    let (data, x) = random_projection(dtype, m, n, k)?;
    // `q8` takes Q4_0 repacked, as a model loads it.
    let tiles = repacked(dtype, &data, n, k);
    let time = |activations, w: GemvWeight| {
        let w = [w];
        best_of(repeats, || {
            std::hint::black_box(gemv_many_with(&w, k, &x, activations));
            Ok(())
        })
    };
    let exact = time(Activations::F32, GemvWeight::rows(dtype, &data, n))?;
    let int8 = time(
        Activations::Int8,
        GemvWeight {
            dtype,
            data: tiles.as_deref().unwrap_or(&data),
            n,
            tiled: tiles.is_some(),
        },
    )?;
    let gb = data.len() as f64 / 1e9;
    Ok(QuantizedSpeed {
        exact: gb / exact,
        int8: gb / int8,
    })
}

/// Q4_0 rows repacked as `--dtype q8` loads them (see q4_0x8), where they are.
fn repacked(
    dtype: candle_core::quantized::GgmlDType,
    data: &[u8],
    n: usize,
    k: usize,
) -> Option<Vec<u8>> {
    use crate::kernels::quantized_int8::q4_0x8;
    (dtype == candle_core::quantized::GgmlDType::Q4_0 && q4_0x8::repacks(n))
        .then(|| q4_0x8::repack(data, n, k / 32))
}

/// The integer GEMM of `--dtype q8` (`m` rows, the tiles where the CPU has
/// VNNI), best of `repeats`: billions of multiply-adds per second, and the
/// share of that time spent quantizing the activations.
pub fn quantized_gemm(
    dtype: candle_core::quantized::GgmlDType,
    m: usize,
    n: usize,
    k: usize,
    repeats: usize,
) -> Result<(f64, f64)> {
    use crate::kernels::quantized_int8::{gemm, RowsByScheme, Weight};
    let (data, x) = random_projection(dtype, m, n, k)?;
    let rows = RowsByScheme::new(&x, k, [dtype]);
    let tiles = repacked(dtype, &data, n, k);
    let w = [Weight {
        dtype,
        data: tiles.as_deref().unwrap_or(&data),
        n,
        tiled: tiles.is_some(),
    }];
    let products = best_of(repeats, || {
        std::hint::black_box(gemm(&w, &rows));
        Ok(())
    })?;
    let quantize = best_of(repeats, || {
        std::hint::black_box(RowsByScheme::new(&x, k, [dtype]));
        Ok(())
    })?;
    Ok((
        (m * n * k) as f64 / 1e9 / products,
        quantize / (products + quantize),
    ))
}
