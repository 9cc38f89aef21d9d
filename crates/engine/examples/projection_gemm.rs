//! The packed projection kernels (f32 panels, and bf16 pair panels over the
//! same weight rounded) against candle's f32 GEMM (what projections fall back
//! to on a CPU without a packed kernel) at a ladder model's projection
//! shapes, for a decode step (1 row) and a scoring pass (512 rows). Run it
//! under `ALIGNTDS_CPU=avx2` to time the AVX2 kernels on an AVX-512 machine
//! (candle's GEMM keeps its own dispatch there).
//! `cargo run --release -p aligntds-engine --example projection_gemm [0.6b|1b]`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size = std::env::args().nth(1).unwrap_or_else(|| "0.6b".into());
    let shapes: &[(&str, usize, usize)] = match size.as_str() {
        "0.6b" => &[
            ("q_proj", 2048, 1024),
            ("gate/up_proj", 3072, 1024),
            ("down_proj", 1024, 3072),
            ("lm_head", 151_936, 1024),
        ],
        "1b" => &[
            ("q/o_proj", 2048, 2048),
            ("gate/up_proj", 8192, 2048),
            ("down_proj", 2048, 8192),
            ("lm_head", 128_256, 2048),
        ],
        other => return Err(format!("size {other:?}: expected 0.6b or 1b").into()),
    };
    println!(
        "{size} shapes; kernel level {} ({} threads); GFLOP/s, best of 5",
        aligntds_engine::math::level().name(),
        rayon::current_num_threads()
    );
    println!(
        "{:<13} {:>5} {:>8} {:>8} {:>6} {:>8}",
        "weight", "rows", "packed", "candle", "ratio", "bf16"
    );
    for m in [1, 512] {
        for &(name, n, k) in shapes {
            let s = aligntds_engine::bench::projection(m, n, k, 5)?;
            println!(
                "{name:<13} {m:>5} {:>8.1} {:>8.1} {:>5.2}x {:>8.1}",
                s.packed,
                s.candle,
                s.packed / s.candle,
                s.packed_bf16
            );
        }
    }
    Ok(())
}
