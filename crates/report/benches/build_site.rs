//! Times `aligntds report` on a synthetic run of 1,000 examples x 500 tokens
//! (override with ALIGNTDS_BENCH_EXAMPLES / ALIGNTDS_BENCH_TOKENS).
//! `cargo bench -p aligntds-report --bench build_site`

use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let examples = env_usize("ALIGNTDS_BENCH_EXAMPLES", 1000);
    let tokens = env_usize("ALIGNTDS_BENCH_TOKENS", 500);
    let tmp = tempfile::tempdir().expect("temporary folder");
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).expect("run folder");
    let started = Instant::now();
    aligntds_analysis::synthetic::write_synthetic_run(&run, examples, tokens)
        .expect("synthetic run");
    let parquet = std::fs::metadata(run.join("positions.parquet")).map_or(0, |m| m.len());
    println!(
        "synthetic run: {examples} examples x {tokens} tokens, positions.parquet {:.1} MB, written in {:.1} s",
        parquet as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let loaded = aligntds_report::Run::load(&run).expect("summary.json");
    let started = Instant::now();
    let stats = aligntds_report::build(&[loaded], &tmp.path().join("site")).expect("site");
    println!(
        "report build: {:.2} s for {} example pages (each with its data file), {:.1} MB",
        started.elapsed().as_secs_f64(),
        stats.example_pages,
        stats.bytes as f64 / 1e6
    );
}
