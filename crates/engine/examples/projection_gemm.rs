//! The packed f32 projection kernel against candle's GEMM (what projections
//! fall back to on a CPU without a packed kernel) at Qwen3-0.6B's projection
//! shapes, for a decode step (1 row) and a scoring pass (512 rows). Run it
//! under `ALIGNTDS_CPU=avx2` to time the AVX2 kernel on an AVX-512 machine
//! (candle's GEMM keeps its own dispatch there).
//! `cargo run --release -p aligntds-engine --example projection_gemm`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shapes = [
        ("q_proj", 2048, 1024),
        ("gate/up_proj", 3072, 1024),
        ("down_proj", 1024, 3072),
        ("lm_head", 151_936, 1024),
    ];
    println!(
        "kernel level {} ({} threads); GFLOP/s, best of 5",
        aligntds_engine::math::level().name(),
        rayon::current_num_threads()
    );
    println!(
        "{:<13} {:>5} {:>8} {:>8} {:>6}",
        "weight", "rows", "packed", "candle", "ratio"
    );
    for m in [1, 512] {
        for (name, n, k) in shapes {
            let s = aligntds_engine::bench::projection(m, n, k, 5)?;
            println!(
                "{name:<13} {m:>5} {:>8.1} {:>8.1} {:>5.2}x",
                s.packed,
                s.candle,
                s.packed / s.candle
            );
        }
    }
    Ok(())
}
