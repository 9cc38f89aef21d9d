//! Read bandwidth of this machine (parallel sum over a 1 GiB buffer, best of
//! 5): the bound for batch-1 generation, which streams every weight once per
//! token. `cargo run --release -p aligntds-engine --example memory_bandwidth`

use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let data: Vec<f32> = (0..(1usize << 28)).map(|i| (i % 7) as f32).collect();
    let bytes = (data.len() * 4) as f64;
    let mut best = f64::INFINITY;
    let mut checksum = 0f64;
    for _ in 0..5 {
        let t0 = Instant::now();
        checksum += data
            .par_chunks(1 << 16)
            .map(|c| {
                // Independent lanes, so the sum vectorises and memory is the limit.
                let mut lanes = [0f32; 16];
                for v in c.chunks_exact(16) {
                    for (l, x) in lanes.iter_mut().zip(v) {
                        *l += x;
                    }
                }
                lanes.iter().sum::<f32>() as f64
            })
            .sum::<f64>();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "read bandwidth: {:.1} GB/s ({} threads; checksum {checksum:.0})",
        bytes / best / 1e9,
        rayon::current_num_threads()
    );
}
