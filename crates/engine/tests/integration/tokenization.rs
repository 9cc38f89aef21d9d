//! Tokenization equals transformers' for the same tokenizer.json, except that
//! no second BOS is added to text that already starts with one.

use crate::common::*;

#[test]
fn encoding_and_decoding_match_transformers() {
    let goldens = read_json(&repo_root().join("fixtures/tokenizers.json"));
    for name in FIXTURES {
        let model = load(name);
        let tok = &model.text.tokenizer;
        for row in goldens["fixtures"][*name].as_array().unwrap() {
            let text = row["text"].as_str().unwrap();
            let mut expected = ids(&row["ids"]);
            if let Some(bos) = &tok.bos {
                // transformers puts a second BOS before text that starts with one; we do not.
                if expected.len() >= 2 && expected[0] == bos.id && expected[1] == bos.id {
                    expected.remove(0);
                }
            }
            assert_eq!(
                tok.encode(text).unwrap(),
                expected,
                "{name}: encode {text:?}"
            );
            let plain = ids(&row["ids_plain"]);
            assert_eq!(
                tok.encode_plain(text).unwrap(),
                plain,
                "{name}: encode without specials {text:?}"
            );
            assert_eq!(
                tok.decode(&plain, false).unwrap(),
                row["decoded"].as_str().unwrap(),
                "{name}: decode"
            );
            assert_eq!(
                tok.decode(&plain, true).unwrap(),
                row["decoded_skip"].as_str().unwrap(),
                "{name}: decode skipping specials"
            );
        }
    }
}

#[test]
fn bos_follows_the_tokenizer_and_is_never_doubled() {
    let llama = load("llama2");
    assert!(llama.text.tokenizer.add_bos);
    let ids = llama.text.tokenizer.encode("<s>[INST] hi [/INST]").unwrap();
    assert_eq!(ids[0], 1);
    assert_ne!(ids[1], 1, "no second BOS");
    assert_eq!(llama.text.tokenizer.encode("hi").unwrap()[0], 1);
    let qwen = load("qwen2");
    assert!(
        !qwen.text.tokenizer.add_bos,
        "byte-level ChatML tokenizer has no BOS"
    );
    assert!(qwen.text.tokenizer.bos.is_none());
}

#[test]
fn pieces_concatenate_to_the_decoded_text() {
    for name in ["llama2", "qwen2"] {
        let model = load(name);
        let tok = &model.text.tokenizer;
        let text = "Unicode: café, 你好, emoji 🙂! And\nnew lines.";
        let ids = tok.encode_plain(text).unwrap();
        let pieces = tok.pieces(&ids).unwrap();
        assert_eq!(pieces.len(), ids.len());
        assert_eq!(pieces.concat(), tok.decode(&ids, false).unwrap(), "{name}");
    }
}

#[test]
fn gguf_twins_of_the_added_architectures_tokenize_as_their_checkpoints() {
    // The tokenizer rebuilt from GGUF metadata (with each family's chat-turn
    // tokens as control or user-defined tokens) against transformers' ids.
    let goldens = read_json(&repo_root().join("fixtures/tokenizers.json"));
    for name in ["qwen3", "olmo2", "gemma2", "phi3"] {
        let path = repo_root().join(format!("fixtures/{name}.gguf"));
        let model = aligntds_engine::LanguageModel::load(
            path.to_str().unwrap(),
            &aligntds_engine::LoadOptions::default(),
        )
        .unwrap();
        let tok = &model.text.tokenizer;
        for row in goldens["fixtures"][name].as_array().unwrap() {
            let text = row["text"].as_str().unwrap();
            let plain = ids(&row["ids_plain"]);
            assert_eq!(
                tok.encode_plain(text).unwrap(),
                plain,
                "{name}.gguf: {text:?}"
            );
            assert_eq!(
                tok.decode(&plain, true).unwrap(),
                row["decoded_skip"].as_str().unwrap(),
                "{name}.gguf: decode {text:?}"
            );
        }
        // A chat turn's tokens stay whole.
        let turn = match name {
            "qwen3" => "<think>",
            "gemma2" => "<start_of_turn>",
            _ => "<|user|>",
        };
        assert_eq!(
            tok.encode_plain(turn).unwrap().len(),
            1,
            "{name}.gguf: {turn}"
        );
    }
}
