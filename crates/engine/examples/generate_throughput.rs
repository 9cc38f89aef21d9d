//! Greedy generation throughput with the KV cache: a short prompt, then
//! `TOKENS` new tokens (end-of-sequence ignored), best of `REPEATS`.
//!
//! cargo run --release -p aligntds-engine --example generate_throughput -- MODEL [TOKENS] [REPEATS] [DTYPE]

use std::time::Instant;

use aligntds_engine::{parse_dtype, GenerateOptions, LanguageModel, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_ref = args
        .next()
        .ok_or("usage: generate_throughput MODEL [TOKENS] [REPEATS] [DTYPE]")?;
    let tokens: usize = args.next().map_or(Ok(128), |s| s.parse())?;
    let repeats: usize = args.next().map_or(Ok(3), |s| s.parse())?;
    let options = LoadOptions {
        dtype: parse_dtype(&args.next().unwrap_or_else(|| "f32".into()))?,
        ..LoadOptions::default()
    };
    let model = LanguageModel::load(&model_ref, &options)?;
    let prompt = model.tokenizer.encode("The three primary colors are")?;
    let generate = GenerateOptions {
        max_new_tokens: tokens,
        stop_strings: vec![],
        eos_token_ids: vec![u32::MAX],
    };
    let mut best = f64::INFINITY;
    for i in 0..=repeats {
        let t0 = Instant::now();
        let out = model.generate(&prompt, &generate)?;
        let secs = t0.elapsed().as_secs_f64();
        if i > 0 {
            best = best.min(secs);
        }
        eprintln!("run {i}: {} tokens in {secs:.3} s", out.tokens.len());
    }
    println!(
        "generate {tokens} tokens ({}): best {best:.3} s = {:.1} tokens/s ({} threads)",
        model.weights_dtype,
        tokens as f64 / best,
        rayon::current_num_threads()
    );
    Ok(())
}
