//! Forward passes of records in flight, packed: a record that wants its
//! scoring pass queues its sequence; whichever waiting record finds no pass
//! running takes the model's turn, runs every queued sequence that fits one
//! packed pass (see [`aligntds_engine::score::prepare_packed`]) and hands each
//! record its hidden states. Records that finish generating while a pass or a
//! decode step runs thus share the next pass, and short records still give the
//! projections many rows. A packed sequence's scores equal, bit for bit, those
//! of a pass over it alone, so which records happen to share a pass never
//! shows in the results.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use aligntds_engine::score::{ScoreRequest, ScoredHidden, PACKED_PASS_TOKENS};
use aligntds_engine::{EngineError, LanguageModel, PrefixCache};
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
            self.lock().done.extend(results);
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
