//! Tokenization as transformers does it for the same `tokenizer.json`, with one
//! deliberate difference: no second BOS when the text already starts with one.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{EngineError, Result};

/// A special token's text and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialToken {
    pub text: String,
    pub id: u32,
}

/// A token string two vocabularies map differently (None: absent there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabularyDifference {
    pub token: String,
    pub id: Option<u32>,
    pub other_id: Option<u32>,
}

impl std::fmt::Display for VocabularyDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |id: Option<u32>| match id {
            Some(id) => format!("id {id}"),
            None => "absent".to_string(),
        };
        write!(
            f,
            "token {:?} is {} in the first vocabulary but {} in the second",
            self.token,
            side(self.id),
            side(self.other_id)
        )
    }
}

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    pub bos: Option<SpecialToken>,
    pub eos: Option<SpecialToken>,
    /// Whether encoding a prompt starts it with BOS.
    pub add_bos: bool,
}

/// `bos_token` and friends in tokenizer_config.json: a string or an AddedToken object.
fn token_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; `tokenizer_config` (parsed tokenizer_config.json,
    /// or Null) supplies the BOS/EOS texts and `add_bos_token`.
    pub fn load(path: &Path, tokenizer_config: &Value) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| EngineError::Tokenizer {
            path: path.to_path_buf(),
            message: format!("cannot load: {e}"),
        })?;
        Self::from_tokenizer(inner, path, tokenizer_config)
    }

    pub fn from_tokenizer(
        inner: tokenizers::Tokenizer,
        path: &Path,
        tokenizer_config: &Value,
    ) -> Result<Self> {
        let special = |key: &str| -> Option<SpecialToken> {
            let text = token_text(tokenizer_config.get(key))?;
            let id = inner.token_to_id(&text)?;
            Some(SpecialToken { text, id })
        };
        let (bos, eos) = (special("bos_token"), special("eos_token"));
        let mut tokenizer = Self {
            inner,
            path: path.to_path_buf(),
            bos,
            eos,
            add_bos: false,
        };
        tokenizer.add_bos = match tokenizer_config
            .get("add_bos_token")
            .and_then(Value::as_bool)
        {
            Some(flag) => flag && tokenizer.bos.is_some(),
            None => tokenizer.post_processor_adds_bos()?,
        };
        Ok(tokenizer)
    }

    /// Whether the tokenizer's post-processor puts BOS in front (Llama-style
    /// TemplateProcessing), learned by encoding a probe text with and without it.
    fn post_processor_adds_bos(&self) -> Result<bool> {
        let probe = |add: bool| -> Result<Vec<u32>> {
            Ok(self
                .inner
                .encode("a", add)
                .map_err(|e| self.error(format!("cannot encode a probe text: {e}")))?
                .get_ids()
                .to_vec())
        };
        let (with, without) = (probe(true)?, probe(false)?);
        let Some(bos) = &self.bos else {
            return Ok(false);
        };
        Ok(with.len() > without.len() && with.first() == Some(&bos.id))
    }

    fn error(&self, message: impl Into<String>) -> EngineError {
        EngineError::Tokenizer {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The first token (by id, ours before theirs) on which two vocabularies
    /// disagree, or None when they map every token string to the same id.
    pub fn first_vocabulary_difference(
        &self,
        other: &TextTokenizer,
    ) -> Option<VocabularyDifference> {
        let (mine, theirs) = (self.inner.get_vocab(true), other.inner.get_vocab(true));
        let first = |a: &std::collections::HashMap<String, u32>,
                     b: &std::collections::HashMap<String, u32>| {
            a.iter()
                .filter(|(t, id)| b.get(*t) != Some(*id))
                .min_by_key(|(_, id)| **id)
                .map(|(t, id)| (t.clone(), *id, b.get(t).copied()))
        };
        if let Some((token, id, other_id)) = first(&mine, &theirs) {
            return Some(VocabularyDifference {
                token,
                id: Some(id),
                other_id,
            });
        }
        first(&theirs, &mine).map(|(token, id, _)| VocabularyDifference {
            token,
            id: None,
            other_id: Some(id),
        })
    }

    pub fn token_to_id(&self, text: &str) -> Option<u32> {
        self.inner.token_to_id(text)
    }

    /// Encodes text: special tokens written in it are parsed as specials; BOS is
    /// put in front when `add_bos` says so and the text does not already start with it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode_plain(text)?;
        if let (true, Some(bos)) = (self.add_bos, &self.bos) {
            if ids.first() != Some(&bos.id) {
                ids.insert(0, bos.id);
            }
        }
        Ok(ids)
    }

    /// Encodes text without adding any special token.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(|e| self.error(format!("cannot encode text: {e}")))?
            .get_ids()
            .to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.error(format!("cannot decode tokens: {e}")))
    }

    /// Each token's share of the decoded text, so that the pieces concatenate to
    /// `decode(ids)`. A token that ends inside a multi-byte character gets an
    /// empty piece and the character goes to the token that completes it.
    pub fn pieces(&self, ids: &[u32]) -> Result<Vec<String>> {
        let mut cursor = PieceCursor::default();
        (1..=ids.len())
            .map(|k| cursor.next(self, &ids[..k], k == ids.len()))
            .collect()
    }
}

/// The state of [`TextTokenizer::pieces`] between tokens, so a stream of
/// tokens gets its pieces one at a time: each step decodes a short window
/// (from one token before the last complete one), never the whole prefix, so
/// this stays linear in the answer's length. The window's first token is
/// decoded alike in both texts, so a decoder that strips a leading space
/// cannot shift the share.
#[derive(Debug, Clone, Copy, Default)]
pub struct PieceCursor {
    prefix_offset: usize,
    read_offset: usize,
}

impl PieceCursor {
    /// The share of `ids`' last token, given the shares of the ones before
    /// were taken from this cursor. `last`: no token follows, so a token
    /// ending inside a character gets its raw piece instead of an empty one.
    pub fn next(&mut self, tok: &TextTokenizer, ids: &[u32], last: bool) -> Result<String> {
        let k = ids.len();
        let previous = tok.decode(&ids[self.prefix_offset..self.read_offset], false)?;
        let text = tok.decode(&ids[self.prefix_offset..k], false)?;
        let piece = if text.starts_with(&previous) && !text.ends_with('\u{FFFD}') {
            text[previous.len()..].to_string()
        } else if text.ends_with('\u{FFFD}') && !last {
            // Inside a multi-byte character: the next complete decode carries it.
            return Ok(String::new());
        } else {
            // The decoder rewrote earlier text (e.g. a stripped leading space); fall back to the raw piece.
            tok.inner.id_to_token(ids[k - 1]).unwrap_or_default()
        };
        self.prefix_offset = self.read_offset;
        self.read_offset = k;
        Ok(piece)
    }
}
