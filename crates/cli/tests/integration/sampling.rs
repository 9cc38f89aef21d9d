//! `aligntds generate` with the sampling flags: the same seed gives the same
//! answer, another seed another; `--top-k-sampling 1` is the greedy answer;
//! values that cannot sample are refused naming the flag.

use crate::common::{aligntds, fixture, stderr, stdout};

fn generate(extra: &[&str]) -> String {
    let model = fixture("llama3");
    let mut args = vec![
        "generate",
        &model,
        "--prompt",
        "Hello",
        "--max-new-tokens",
        "12",
        "--logprobs",
    ];
    args.extend_from_slice(extra);
    let out = aligntds(&args);
    assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
    // The token ids column.
    stdout(&out)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_seed_gives_one_answer_and_greedy_stays_greedy() {
    let seeded = generate(&["--seed", "5", "--temperature", "1.2"]);
    assert_eq!(seeded.split(' ').count(), 12);
    assert_eq!(generate(&["--seed", "5", "--temperature", "1.2"]), seeded);
    assert_ne!(generate(&["--seed", "6", "--temperature", "1.2"]), seeded);
    let greedy = generate(&[]);
    assert_ne!(seeded, greedy);
    assert_eq!(generate(&["--top-k-sampling", "1", "--seed", "9"]), greedy);
}

#[test]
fn values_that_cannot_sample_are_refused_naming_the_flag() {
    let model = fixture("llama3");
    for (flag, value) in [
        ("--temperature", "0"),
        ("--top-p", "1.5"),
        ("--top-p", "0"),
        ("--top-k-sampling", "0"),
    ] {
        let out = aligntds(&["generate", &model, "--prompt", "Hi", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(
            stderr(&out).contains(&format!("option `{flag}`")),
            "{}",
            stderr(&out)
        );
    }
}
