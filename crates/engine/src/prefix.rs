//! Shared context prefixes: a prefix many sequences start with (a URIAL
//! prefix, a long system prompt, a template's fixed head) runs once; each
//! sequence continues a copy of its key/value cache, in scoring and in
//! generation. Keys and values of a position depend only on the tokens up to
//! it, so a continued sequence computes what a pass from scratch does (the
//! same arithmetic in another blocking: equal within float rounding).

use crate::error::Result;
use crate::models::decoder::{Decoder, KvCache};

/// A prefix's token ids and its key/value cache.
pub struct PrefixCache {
    tokens: Vec<u32>,
    cache: KvCache,
}

impl PrefixCache {
    /// Runs `tokens` (at least one) once, keeping their cache.
    pub(crate) fn new(decoder: &Decoder, tokens: &[u32]) -> Result<Self> {
        let mut cache = decoder.new_cache_for(tokens.len());
        decoder.hidden_states(tokens, Some(&mut cache))?;
        Ok(Self {
            tokens: tokens.to_vec(),
            cache,
        })
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `tokens` start with this prefix and go on past it.
    pub fn continued_by(&self, tokens: &[u32]) -> bool {
        tokens.len() > self.tokens.len() && tokens.starts_with(&self.tokens)
    }

    /// Whether a sequence of `positions` positions can continue the cache
    /// (see [`KvCache::continues_to`]); where not, it runs from scratch.
    pub(crate) fn holds_for(&self, positions: usize) -> bool {
        self.cache.continues_to(positions)
    }

    /// A copy of the cache for one sequence, with room for `extra` positions.
    pub(crate) fn fork(&self, extra: usize) -> Result<KvCache> {
        self.cache.fork(extra)
    }
}

/// How many leading tokens `a` and `b` share.
pub fn shared_prefix_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
