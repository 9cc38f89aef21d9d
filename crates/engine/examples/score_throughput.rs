//! Teacher-forced scoring throughput: one forward pass over a sequence plus the
//! full-vocabulary log-softmax of every position.
//!
//! cargo run --release -p aligntds-engine --example score_throughput -- MODEL [TOKENS] [REPEATS] [DTYPE]

use std::time::Instant;

use aligntds_engine::{parse_dtype, LanguageModel, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model_ref = args
        .next()
        .ok_or("usage: score_throughput MODEL [TOKENS] [REPEATS]")?;
    let len: usize = args.next().map_or(Ok(512), |s| s.parse())?;
    let repeats: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let options = LoadOptions {
        dtype: parse_dtype(&args.next().unwrap_or_else(|| "f32".into()))?,
        ..LoadOptions::default()
    };
    let started = Instant::now();
    let model = LanguageModel::load(&model_ref, &options)?;
    eprintln!("loaded in {:.2} s", started.elapsed().as_secs_f64());
    let vocab = model.tokenizer.vocab_size() as u32;
    // A deterministic pseudo-random sequence within the tokenizer's vocabulary.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let tokens: Vec<u32> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % vocab as u64) as u32
        })
        .collect();
    let mut best = f64::INFINITY;
    for i in 0..=repeats {
        let t0 = Instant::now();
        let mut checksum = 0f64;
        model.score(&tokens, 1, |rows| {
            for (pos, row) in rows.rows() {
                checksum += row[tokens[pos] as usize] as f64;
            }
            Ok(())
        })?;
        let secs = t0.elapsed().as_secs_f64();
        if i > 0 {
            best = best.min(secs);
        }
        eprintln!(
            "run {i}: {secs:.3} s, mean log-prob {:.4}",
            checksum / (len - 1) as f64
        );
    }
    println!(
        "{len} tokens ({}): best {best:.3} s = {:.0} tokens/s ({} threads)",
        model.weights_dtype,
        len as f64 / best,
        rayon::current_num_threads()
    );
    Ok(())
}
