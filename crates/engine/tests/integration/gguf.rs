//! GGUF files: the tiny fixtures written as llama.cpp would write them give
//! their safetensors twins' log-probabilities, and broken files give clear errors.

use std::path::{Path, PathBuf};

use crate::common::*;
use aligntds_engine::{DTypeChoice, GenerateOptions, LanguageModel, LoadOptions};

fn gguf_path(name: &str) -> PathBuf {
    repo_root().join("fixtures").join(format!("{name}.gguf"))
}

fn load_gguf(path: &Path, dtype: DTypeChoice) -> aligntds_engine::Result<LanguageModel> {
    LanguageModel::load(
        path.to_str().unwrap(),
        &LoadOptions {
            dtype,
            ..Default::default()
        },
    )
}

#[test]
fn gguf_twins_match_the_safetensors_goldens() {
    for name in FIXTURES {
        let model = load_gguf(
            &gguf_path(name),
            DTypeChoice::Float(aligntds_engine::DType::F32),
        )
        .unwrap();
        let goldens = read_json(&fixture_dir(name).join("goldens.json"));
        for (i, seq) in goldens["sequences"].as_array().unwrap().iter().enumerate() {
            let err = max_error(&model, seq, None);
            eprintln!("{name}.gguf sequence {i}: max |delta log-prob| = {err:.2e}");
            assert!(err <= TOLERANCE, "{name}.gguf sequence {i}: {err}");
        }
        let generation = &goldens["generation"];
        let expected = ids(&generation["tokens"]);
        let options = GenerateOptions {
            max_new_tokens: expected.len(),
            stop_strings: vec![],
            eos_token_ids: vec![u32::MAX],
            cancel: Default::default(),
            sampling: None,
        };
        let out = model
            .generate(&ids(&generation["prompt"]), &options)
            .unwrap();
        assert_eq!(out.tokens, expected, "{name}.gguf greedy tokens");
    }
}

#[test]
fn gguf_twins_carry_templates_and_special_tokens() {
    let qwen = load_gguf(&gguf_path("qwen2"), DTypeChoice::Auto).unwrap();
    assert!(!qwen.text.tokenizer.add_bos);
    assert_eq!(qwen.text.tokenizer.eos.as_ref().unwrap().text, "<|im_end|>");
    let direct = load("qwen2");
    let messages = aligntds_engine::template::single_turn("Hi there", Some("Be brief."));
    assert_eq!(
        qwen.text.render_chat(&messages).unwrap(),
        direct.text.render_chat(&messages).unwrap()
    );
    // Same byte-level vocabulary and merges: same tokens as the tokenizer.json.
    let text = "Hello world, numbers 12345 and <|im_start|>user\nhi<|im_end|>";
    assert_eq!(
        qwen.text.tokenizer.encode(text).unwrap(),
        direct.text.tokenizer.encode(text).unwrap()
    );
    let llama = load_gguf(&gguf_path("llama2"), DTypeChoice::Auto).unwrap();
    assert!(llama.text.tokenizer.add_bos);
    assert_eq!(llama.text.tokenizer.bos.as_ref().unwrap().id, 1);
    assert!(
        llama.weights_dtype.starts_with("f32 (auto"),
        "{}",
        llama.weights_dtype
    );
}

fn temp_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("{name}.gguf"));
    std::fs::copy(gguf_path(name), &path).unwrap();
    (tmp, path)
}

fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in file")
}

fn err_of(path: &Path) -> String {
    load_gguf(path, DTypeChoice::Auto)
        .err()
        .expect("loading must fail")
        .to_string()
}

#[test]
fn truncated_gguf_is_reported() {
    let (_tmp, path) = temp_copy("llama3");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = err_of(&path);
    assert!(
        err.contains("llama3.gguf") && err.contains("truncated"),
        "{err}"
    );
    std::fs::write(&path, &bytes[..100]).unwrap();
    let err = err_of(&path);
    assert!(
        err.contains("llama3.gguf") && err.contains("not a readable GGUF"),
        "{err}"
    );
}

#[test]
fn unknown_tensor_type_is_reported() {
    let (_tmp, path) = temp_copy("qwen2");
    let mut bytes = std::fs::read(&path).unwrap();
    // Tensor info: name, n_dims (u32), dims (u64 each), type (u32), offset (u64).
    let at = find(&bytes, b"output_norm.weight") + "output_norm.weight".len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let type_at = at + 4 + 8 * n_dims;
    bytes[type_at..type_at + 4].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = err_of(&path);
    assert!(err.contains("qwen2.gguf") && err.contains("99"), "{err}");
}

#[test]
fn unknown_architecture_is_reported() {
    let (_tmp, path) = temp_copy("qwen2");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = find(&bytes, b"general.architecture") + "general.architecture".len() + 4 + 8;
    bytes[at..at + 5].copy_from_slice(b"qwen9");
    std::fs::write(&path, &bytes).unwrap();
    let err = err_of(&path);
    assert!(
        err.contains("qwen9") && err.contains("llama, qwen2, gemma3"),
        "{err}"
    );
}

#[test]
fn unknown_tokenizer_model_is_reported() {
    let (_tmp, path) = temp_copy("qwen2");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = find(&bytes, b"tokenizer.ggml.model") + "tokenizer.ggml.model".len() + 4 + 8;
    assert_eq!(&bytes[at..at + 4], b"gpt2");
    bytes[at..at + 4].copy_from_slice(b"rwkv");
    std::fs::write(&path, &bytes).unwrap();
    let err = err_of(&path);
    assert!(err.contains("rwkv") && err.contains("gpt2, llama"), "{err}");
}

#[test]
fn a_projection_of_the_wrong_shape_is_reported_not_a_panic() {
    // Packed f32 projections read GGUF tensors in row blocks; a tensor whose
    // dimensions disagree with the config must be an error naming it.
    let (_tmp, path) = temp_copy("llama3");
    let mut bytes = std::fs::read(&path).unwrap();
    let name = b"blk.0.ffn_down.weight";
    let at = find(&bytes, name) + name.len();
    assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 2);
    // Swap the two dimensions: the same bytes, a transposed shape.
    let (d0, d1) = (at + 4, at + 12);
    let first: [u8; 8] = bytes[d0..d0 + 8].try_into().unwrap();
    let second: [u8; 8] = bytes[d1..d1 + 8].try_into().unwrap();
    assert_ne!(first, second, "the fixture's down projection is not square");
    bytes[d0..d0 + 8].copy_from_slice(&second);
    bytes[d1..d1 + 8].copy_from_slice(&first);
    std::fs::write(&path, &bytes).unwrap();
    for dtype in [
        DTypeChoice::Float(aligntds_engine::DType::F32),
        DTypeChoice::Auto,
    ] {
        let err = load_gguf(&path, dtype)
            .err()
            .expect("loading must fail")
            .to_string();
        assert!(
            err.contains("llama3.gguf")
                && err.contains("shape mismatch for model.layers.0.mlp.down_proj.weight"),
            "{err}"
        );
    }
}

#[test]
fn a_quantized_phi3_splits_its_fused_projections_without_dequantizing() {
    // Phi-3's fused qkv_proj / gate_up_proj in Q8_0, split by whole rows of
    // blocks under `--dtype q`: the same numbers as dequantizing first.
    let path = repo_root().join("fixtures/phi3.q8_0.gguf");
    let goldens = read_json(&fixture_dir("phi3").join("goldens.json"));
    let quantized = load_gguf(&path, DTypeChoice::Quantized).unwrap();
    let dense = load_gguf(&path, DTypeChoice::Float(aligntds_engine::DType::F32)).unwrap();
    for seq in goldens["sequences"].as_array().unwrap() {
        let tokens = ids(&seq["tokens"]);
        let start = seq["start"].as_u64().unwrap() as usize;
        let (q, d) = (
            forced_rows(&quantized, &tokens, start),
            forced_rows(&dense, &tokens, start),
        );
        let worst = q
            .iter()
            .zip(&d)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4, "q vs dequantized: {worst}");
        // Q8_0's 8-bit weights move these random-weight log-probs by tenths at
        // most, as bf16 does (0.33 on this fixture), never by whole units.
        let err = max_error_with(&quantized, seq, None, 0.5);
        eprintln!("phi3.q8_0 vs transformers f32: {err:.4}");
        assert!(err > 1e-6 && err < 0.5, "{err}");
    }
    // Decoding one token at a time through the quantized kernels agrees with one pass.
    let prompt = ids(&goldens["sequences"][1]["tokens"])[..30].to_vec();
    let options = GenerateOptions {
        max_new_tokens: 10,
        stop_strings: vec![],
        eos_token_ids: vec![u32::MAX],
        cancel: Default::default(),
        sampling: None,
    };
    let out = quantized.generate(&prompt, &options).unwrap();
    let full: Vec<u32> = prompt.iter().chain(&out.tokens).copied().collect();
    for (a, b) in out
        .logprobs
        .iter()
        .zip(&forced(&quantized, &full, prompt.len()))
    {
        assert!((a - b).abs() <= 1e-4, "cache {a} vs teacher-forced {b}");
    }
}
