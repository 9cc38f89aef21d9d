//! Quantized projections straight from GGUF blocks, with f32 activations
//! (`--dtype q`) and with activations quantized to 8 bits (`--dtype q8`), at
//! Qwen3-0.6B's projection shapes for a decode step (1 row), in GB/s of
//! weights read: compare with `--example memory_bandwidth`, the bound.
//! `cargo run --release -p aligntds-engine --example quantized_gemv`
//!
//! With a row count (`-- 512`: a scoring pass), times `q8`'s integer GEMM
//! instead, in billions of multiply-adds per second.

use candle_core::quantized::GgmlDType;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shapes = [
        ("q_proj", 2048, 1024),
        ("gate/up_proj", 3072, 1024),
        ("down_proj", 1024, 3072),
        ("lm_head", 151_936, 1024),
    ];
    if let Some(m) = std::env::args().nth(1) {
        let m: usize = m.parse()?;
        println!(
            "integer GEMM, {m} rows, {} threads; GMAC/s, best of 3",
            rayon::current_num_threads()
        );
        for dtype in [
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            for (name, n, k) in shapes {
                let (speed, quantize) = aligntds_engine::bench::quantized_gemm(dtype, m, n, k, 3)?;
                println!(
                    "{:<6} {name:<13} {speed:>8.1} GMAC/s (quantizing the rows: {:.0} % more)",
                    format!("{dtype:?}"),
                    100.0 * quantize
                );
            }
        }
        return Ok(());
    }
    println!(
        "kernel level {}, integer path {:?} ({} threads); GB/s of weights, best of 5",
        aligntds_engine::math::level().name(),
        aligntds_engine::math::int8_path(),
        rayon::current_num_threads()
    );
    println!(
        "{:<6} {:<13} {:>5} {:>8} {:>8} {:>6}",
        "type", "weight", "rows", "q", "q8", "ratio"
    );
    for dtype in [
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
        GgmlDType::Q4K,
        GgmlDType::Q6K,
    ] {
        for m in [1] {
            for (name, n, k) in shapes {
                let s = aligntds_engine::bench::quantized_projection(dtype, m, n, k, 5)?;
                println!(
                    "{:<6} {name:<13} {m:>5} {:>8.1} {:>8.1} {:>5.2}x",
                    format!("{dtype:?}"),
                    s.exact,
                    s.int8,
                    s.int8 / s.exact
                );
            }
        }
    }
    Ok(())
}
