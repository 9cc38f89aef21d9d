//! The local candle engine as a backend: full rows, batched generation
//! (`batch.rs`) and packed scoring (`scoring.rs`) across records in flight.

use std::sync::{Arc, OnceLock};

use parking_lot::{FairMutex, FairMutexGuard, ReentrantMutex, ReentrantMutexGuard};

use aligntds_engine::argmax;
use aligntds_engine::{GenerateOptions, Generation, LanguageModel, PrefixCache, Stepper};

use super::{Backend, BackendError, Rows, Scored, Session, View};
use crate::input::prefixes::Prefixes;

mod batch;
mod scoring;

use batch::GenerationService;
use scoring::PackedScoring;

/// The local candle engine: full rows. One call at a time: each already uses
/// every core, so records in flight take turns here (a fair turn, so a decode
/// loop cannot starve scoring). (The turn is per call, not per scored
/// sequence: both sides of a pair may be this one backend, under two templates.)
/// With a batch above 1, generation requests from records in flight are decoded
/// together by one service thread, and the study keeps that many in flight;
/// their scoring passes are packed together (see [`crate::backend::local::scoring`]);
/// one record at a time computes its log-distributions (its chunk buffers are
/// the big allocation, and that work takes turns anyway), re-entrantly, as both
/// sides may be this backend.
/// Context prefixes shared by many records run once (see [`crate::input::prefixes`])
/// unless [`LocalBackend::without_prefix_reuse`] says not to.
pub struct LocalBackend {
    model: Arc<LanguageModel>,
    turn: Arc<FairMutex<()>>,
    scoring: ReentrantMutex<()>,
    packing: PackedScoring,
    /// Chunk buffers of finished records, reused: a fresh one of a few hundred
    /// MB costs its page faults and zeroing again for every record.
    buffers: std::sync::Mutex<Vec<Vec<f32>>>,
    batch: usize,
    service: OnceLock<GenerationService>,
    prefixes: Option<std::sync::Mutex<Prefixes>>,
}

impl LocalBackend {
    /// One sequence generated at a time.
    pub fn new(model: Arc<LanguageModel>) -> Self {
        Self::with_batch(model, 1)
    }

    /// Up to `batch` sequences generated together.
    pub fn with_batch(model: Arc<LanguageModel>, batch: usize) -> Self {
        Self {
            model,
            turn: Arc::new(FairMutex::new(())),
            scoring: ReentrantMutex::new(()),
            packing: PackedScoring::default(),
            buffers: Default::default(),
            batch: batch.max(1),
            service: OnceLock::new(),
            prefixes: Some(Default::default()),
        }
    }

    /// Every sequence runs from its first token (for comparison and debugging).
    pub fn without_prefix_reuse(mut self) -> Self {
        self.prefixes = None;
        self
    }

    /// The cached prefix `context` continues, built now if it shares one
    /// with a recent context (see [`crate::input::prefixes`]).
    fn prefix_for(&self, context: &[u32]) -> Result<Option<Arc<PrefixCache>>, BackendError> {
        let Some(prefixes) = &self.prefixes else {
            return Ok(None);
        };
        if context.len() <= crate::input::prefixes::MIN_PREFIX_TOKENS {
            return Ok(None);
        }
        let mut prefixes = prefixes.lock().unwrap_or_else(|p| p.into_inner());
        Ok(prefixes.lookup(context, |shared| {
            let _turn = self.turn();
            self.model.prefix_cache(shared)
        })?)
    }

    /// Sequences generated together.
    pub fn batch(&self) -> usize {
        self.batch
    }

    fn turn(&self) -> FairMutexGuard<'_, ()> {
        self.turn.lock()
    }
}

struct LocalScored<'a> {
    prepared: aligntds_engine::PreparedScoring<'a>,
    buffer: Vec<f32>,
    backend: &'a LocalBackend,
    /// Taken at the first rows; last, so the buffer is given back before the
    /// next record may compute its rows.
    scoring: Option<ReentrantMutexGuard<'a, ()>>,
}

impl Drop for LocalScored<'_> {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        if buffer.capacity() > 0 {
            let mut pool = self
                .backend
                .buffers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Both sides of the record in flight hold one each: keep that many.
            if pool.len() < 2 {
                pool.push(buffer);
            }
        }
    }
}

impl Scored for LocalScored<'_> {
    fn answer_len(&self) -> usize {
        self.prepared.answer_len()
    }

    fn rows(&mut self, first: usize, n: usize) -> Result<Rows<'_>, BackendError> {
        if self.scoring.is_none() {
            self.scoring = Some(self.backend.scoring.lock());
            let mut pool = self
                .backend
                .buffers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.buffer = pool.pop().unwrap_or_default();
        }
        let _turn = self.backend.turn();
        self.prepared.log_probs(first, n, &mut self.buffer)?;
        Ok(Rows::Full {
            width: self.prepared.width(),
            data: &self.buffer,
        })
    }
}

impl Backend for LocalBackend {
    /// The engine's own stepper: a key/value cache fed one token per step,
    /// full rows. (Not under the turn: only the live pair steps, on one thread.)
    fn session<'m>(
        &'m self,
        prompt: &[u32],
        reserve: usize,
        _top_k: usize,
        _eos: &[u32],
    ) -> Result<Box<dyn Session<'m> + 'm>, BackendError> {
        let mut stepper = self.model.stepper(prompt.len() + reserve);
        let mut row = Vec::new();
        stepper.feed(prompt, &mut row)?;
        Ok(Box::new(LocalSession { stepper, row }))
    }

    fn weights(&self) -> String {
        self.model.weights_dtype.clone()
    }

    fn logits_width(&self) -> Option<usize> {
        Some(self.model.logits_width())
    }

    fn context_length(&self) -> usize {
        self.model.context_length()
    }

    fn chunk_rows(&self) -> usize {
        aligntds_engine::pair_chunk_rows(self.model.logits_width())
    }

    fn concurrency(&self) -> usize {
        self.batch
    }

    fn prepare<'a>(
        &'a self,
        tokens: &[u32],
        answer_start: usize,
        _top_k: usize,
    ) -> Result<Box<dyn Scored + 'a>, BackendError> {
        let prefix = match tokens.get(..answer_start) {
            Some(context) => self.prefix_for(context)?,
            None => None,
        };
        let state = self
            .packing
            .prepare(&self.model, &self.turn, tokens, answer_start, prefix)?;
        Ok(Box::new(LocalScored {
            prepared: self.model.resume_scoring(state),
            buffer: Vec::new(),
            backend: self,
            scoring: None,
        }))
    }

    fn prepare_generated<'a>(
        &'a self,
        tokens: &[u32],
        answer_start: usize,
        generation: &Generation,
    ) -> Result<Option<Box<dyn Scored + 'a>>, BackendError> {
        let answer = tokens.get(answer_start..).unwrap_or_default();
        let width = self.model.config().hidden_size;
        // Where a batched step's states depend on the batch (bf16 or f16
        // activations), or scores from them stray from teacher forcing (bf16
        // weights), a teacher-forced pass scores the answer.
        if answer_start == 0
            || !self.model.generation_scores_match_forcing()
            || !generation.tokens.starts_with(answer)
            || generation.hidden_states.len() < answer.len() * width
        {
            return Ok(None);
        }
        let prepared = self.model.scoring_from_generation(
            answer_start,
            answer.len(),
            &generation.hidden_states,
        )?;
        Ok(Some(Box::new(LocalScored {
            prepared,
            buffer: Vec::new(),
            backend: self,
            scoring: None,
        })))
    }

    fn generate(
        &self,
        prompt: &[u32],
        options: &GenerateOptions,
    ) -> Result<Generation, BackendError> {
        let prefix = self.prefix_for(prompt)?;
        if self.batch == 1 {
            let _turn = self.turn();
            return Ok(match &prefix {
                Some(p) => self.model.generate_after(p, prompt, options)?,
                None => self.model.generate(prompt, options)?,
            });
        }
        let service = self.service.get_or_init(|| {
            GenerationService::start(self.model.clone(), self.turn.clone(), self.batch)
        });
        Ok(service.generate(prompt, options, prefix)?)
    }
}

/// A sequence on the local engine, one token per step.
struct LocalSession<'m> {
    stepper: Stepper<'m>,
    /// The log-distribution after the tokens fed so far.
    row: Vec<f32>,
}

impl<'m> Session<'m> for LocalSession<'m> {
    fn choose(
        &mut self,
        sampling: Option<&aligntds_engine::Sampling>,
        index: usize,
    ) -> Result<u32, BackendError> {
        Ok(match sampling {
            Some(s) => s.choose(&self.row, index),
            None => argmax(&self.row),
        } as u32)
    }

    fn view(&mut self, _token: u32) -> Result<View<'_>, BackendError> {
        Ok(View::Full(&self.row))
    }

    fn push(&mut self, token: u32) -> Result<(), BackendError> {
        Ok(self.stepper.feed(&[token], &mut self.row)?)
    }

    fn fits_one(&self) -> bool {
        self.stepper.fits(1)
    }

    fn stepper(&mut self) -> Option<(&mut Stepper<'m>, &mut Vec<f32>)> {
        Some((&mut self.stepper, &mut self.row))
    }
}
