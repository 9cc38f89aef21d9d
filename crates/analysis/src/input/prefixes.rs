//! Which context prefixes the local engine keeps cached: when a sequence
//! shares at least [`MIN_PREFIX_TOKENS`] leading tokens with a recent one
//! (records under one URIAL prefix, system prompt or template head), that
//! shared prefix runs once and every later sequence that starts with it
//! continues its cache (engine `PrefixCache`), in scoring and in generation.

use std::collections::VecDeque;
use std::sync::Arc;

use aligntds_engine::shared_prefix_len;
use aligntds_engine::{EngineError, PrefixCache};

/// Shorter shared prefixes are not worth a cache copy per sequence.
pub const MIN_PREFIX_TOKENS: usize = 64;

/// Prefixes kept, and recent sequences remembered (both sides of a pair may
/// share one backend, each with its own context).
const KEPT: usize = 4;

#[derive(Default)]
pub(crate) struct Prefixes {
    entries: VecDeque<Arc<PrefixCache>>,
    recent: VecDeque<Vec<u32>>,
}

impl Prefixes {
    /// The longest kept prefix that `context` continues; or, where `context`
    /// shares at least [`MIN_PREFIX_TOKENS`] more with a recent context, that
    /// shared prefix, built now by `build`. `context` is remembered either way.
    pub(crate) fn lookup(
        &mut self,
        context: &[u32],
        build: impl FnOnce(&[u32]) -> Result<PrefixCache, EngineError>,
    ) -> Result<Option<Arc<PrefixCache>>, EngineError> {
        let mut found = self
            .entries
            .iter()
            .filter(|e| e.continued_by(context))
            .max_by_key(|e| e.len())
            .cloned();
        let shared = self
            .recent
            .iter()
            .map(|r| shared_prefix_len(r, context))
            .max()
            .unwrap_or(0)
            .min(context.len().saturating_sub(1));
        // A kept prefix much shorter than what recent contexts share (a template
        // head common to both sides, under one side's long prefix) gives way
        // to the longer one.
        let kept = found.as_ref().map_or(0, |e| e.len());
        if shared >= MIN_PREFIX_TOKENS && shared >= kept + MIN_PREFIX_TOKENS {
            let entry = Arc::new(build(&context[..shared])?);
            self.entries.push_back(entry.clone());
            if self.entries.len() > KEPT {
                self.entries.pop_front();
            }
            found = Some(entry);
        }
        if self.recent.back().map(Vec::as_slice) != Some(context) {
            self.recent.push_back(context.to_vec());
            if self.recent.len() > KEPT {
                self.recent.pop_front();
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> aligntds_engine::LanguageModel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama3");
        aligntds_engine::LanguageModel::load(dir.to_str().unwrap(), &Default::default()).unwrap()
    }

    /// `n` token ids from `first` on.
    fn ids(first: u32, n: usize) -> Vec<u32> {
        (first..first + n as u32).collect()
    }

    #[test]
    fn shared_prefixes_are_built_once_and_a_longer_one_replaces_a_common_head() {
        let model = fixture();
        let head = ids(10, 70); // shared by both sides' contexts
        let urial = ids(100, 100); // the aligned side's long prefix
        let with = |parts: &[&[u32]]| parts.concat();
        let contexts = [
            with(&[&head, &urial, &ids(300, 5)]),
            with(&[&head, &ids(400, 20)]),
            with(&[&head, &urial, &ids(320, 5)]),
            with(&[&head, &urial, &ids(340, 5)]),
            with(&[&ids(200, 30), &ids(300, 5)]),
        ];
        let mut prefixes = Prefixes::default();
        let mut built = Vec::new();
        let mut used = Vec::new();
        for c in &contexts {
            let found = prefixes
                .lookup(c, |p| {
                    built.push(p.len());
                    model.prefix_cache(p)
                })
                .unwrap();
            used.push(found.map_or(0, |p| p.len()));
        }
        // The first context has nothing to share; the second shares the head;
        // the third shares the head and the long prefix with the first, which
        // replaces the head for it and the fourth; the last shares nothing.
        assert_eq!(built, vec![70, 170]);
        assert_eq!(used, vec![0, 70, 170, 170, 0]);
    }
}
