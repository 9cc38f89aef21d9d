//! Forward passes of records in flight, packed: a record that wants its
//! scoring pass queues its sequence; whichever waiting record finds no pass
//! running takes the model's turn, runs every queued sequence that fits one
//! packed pass (see [`aligntds_engine::LanguageModel::prepare_scoring_packed`]) and hands each
//! record its hidden states. Records that finish generating while a pass or a
//! decode step runs thus share the next pass, and short records still give the
//! projections many rows. A packed sequence's scores equal, bit for bit, those
//! of a pass over it alone, so which records happen to share a pass never
//! shows in the results.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use aligntds_engine::{EngineError, LanguageModel, PrefixCache};
use aligntds_engine::{ScoreRequest, ScoredHidden, PACKED_PASS_TOKENS};
use parking_lot::FairMutex;

struct Waiting {
    ticket: u64,
    tokens: Vec<u32>,
    answer_start: usize,
    prefix: Option<Arc<PrefixCache>>,
}

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    waiting: Vec<Waiting>,
    done: HashMap<u64, Result<ScoredHidden, EngineError>>,
    /// Whether a record is running a pass for the queue now.
    running: bool,
    /// Passes run, and sequences they held (for tests).
    passes: usize,
    sequences: usize,
}

#[derive(Default)]
pub(crate) struct PackedScoring {
    queue: Mutex<Queue>,
    finished: Condvar,
}

/// Clears `running` and wakes the waiting records, also if a pass panics.
struct Running<'q>(&'q PackedScoring);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.lock().running = false;
        self.0.finished.notify_all();
    }
}

impl PackedScoring {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The forward pass over `tokens` (continuing `prefix` where given),
    /// packed with the other records' that are waiting; runs in `turn`.
    pub(crate) fn prepare(
        &self,
        model: &LanguageModel,
        turn: &FairMutex<()>,
        tokens: &[u32],
        answer_start: usize,
        prefix: Option<Arc<PrefixCache>>,
    ) -> Result<ScoredHidden, EngineError> {
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push(Waiting {
            ticket,
            tokens: tokens.to_vec(),
            answer_start,
            prefix,
        });
        loop {
            if let Some(result) = queue.done.remove(&ticket) {
                return result;
            }
            if queue.running {
                queue = self.finished.wait(queue).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            queue.running = true;
            drop(queue);
            let running = Running(self);
            let results = {
                let _turn = turn.lock();
                // Taken once the turn is ours: records that queued meanwhile join.
                let batch = self.take_one_pass();
                let requests: Vec<ScoreRequest> = batch
                    .iter()
                    .map(|w| ScoreRequest {
                        tokens: &w.tokens,
                        answer_start: w.answer_start,
                        prefix: w.prefix.as_deref(),
                    })
                    .collect();
                let results = model.prepare_scoring_packed(&requests);
                batch
                    .iter()
                    .map(|w| w.ticket)
                    .zip(results)
                    .collect::<Vec<_>>()
            };
            let mut queue_now = self.lock();
            queue_now.passes += 1;
            queue_now.sequences += results.len();
            queue_now.done.extend(results);
            drop(queue_now);
            drop(running);
            queue = self.lock();
        }
    }

    /// The oldest waiting sequences that fit one packed pass (at least one).
    fn take_one_pass(&self) -> Vec<Waiting> {
        let mut queue = self.lock();
        let mut held = 0;
        let take = queue
            .waiting
            .iter()
            .take_while(|w| {
                held += w.tokens.len();
                held <= PACKED_PASS_TOKENS
            })
            .count()
            .max(1)
            .min(queue.waiting.len());
        queue.waiting.drain(..take).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> LanguageModel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/qwen2");
        LanguageModel::load(dir.to_str().unwrap(), &Default::default()).unwrap()
    }

    #[test]
    fn records_scoring_at_once_share_passes_and_get_their_own_rows() {
        let model = fixture();
        let (turn, packing) = (FairMutex::new(()), PackedScoring::default());
        let sequences: Vec<Vec<u32>> = (0..8u32)
            .map(|i| {
                (0..40 + 7 * i)
                    .map(|t| (t * 31 + i * 17) % 200 + 3)
                    .collect()
            })
            .collect();
        // The turn held until every record has queued, as a decode step would.
        let held = turn.lock();
        let states = std::thread::scope(|scope| {
            let handles: Vec<_> = sequences
                .iter()
                .map(|tokens| {
                    let (model, turn, packing) = (&model, &turn, &packing);
                    scope.spawn(move || packing.prepare(model, turn, tokens, 20, None).unwrap())
                })
                .collect();
            while packing.lock().waiting.len() < sequences.len() {
                std::thread::yield_now();
            }
            drop(held);
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        let queue = packing.lock();
        assert_eq!(queue.sequences, sequences.len());
        assert!(queue.passes < sequences.len(), "{} passes", queue.passes);
        drop(queue);
        for (tokens, state) in sequences.iter().zip(states) {
            let n = tokens.len() - 20;
            let (mut packed, mut alone) = (Vec::new(), Vec::new());
            model
                .resume_scoring(state)
                .log_probs(0, n, &mut packed)
                .unwrap();
            model
                .prepare_scoring(tokens, 20)
                .unwrap()
                .log_probs(0, n, &mut alone)
                .unwrap();
            assert!(packed
                .iter()
                .zip(&alone)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
