//! The local engine's generation service: one thread decodes, together, the
//! answers every record in flight asks for (see the engine's batch module),
//! so a study's records share each decode step's pass over the weights.
//! Requests join the running batch as slots free up; each caller blocks only
//! for its own answer.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use aligntds_engine::Request as Sequence;
use aligntds_engine::{
    EngineError, Finished, GenerateOptions, Generation, LanguageModel, PrefixCache,
};
use parking_lot::FairMutex;

type Reply = Sender<Result<Generation, EngineError>>;

struct Request {
    prompt: Vec<u32>,
    options: GenerateOptions,
    prefix: Option<Arc<PrefixCache>>,
    reply: Reply,
}

pub(crate) struct GenerationService {
    requests: Mutex<Option<Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GenerationService {
    /// Starts the decoding thread: up to `batch` sequences together, each step
    /// taken in `turn` (shared with the model's scoring calls).
    pub(crate) fn start(model: Arc<LanguageModel>, turn: Arc<FairMutex<()>>, batch: usize) -> Self {
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("aligntds-generate".into())
            .spawn(move || serve(&model, &turn, batch, rx))
            .ok();
        Self {
            requests: Mutex::new(thread.as_ref().map(|_| tx)),
            thread: Mutex::new(thread),
        }
    }

    /// Greedy generation from `prompt` (continuing `prefix`'s cache where
    /// given), decoded alongside the other requests.
    pub(crate) fn generate(
        &self,
        prompt: &[u32],
        options: &GenerateOptions,
        prefix: Option<Arc<PrefixCache>>,
    ) -> Result<Generation, EngineError> {
        let (reply, answer) = channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            // Only whether it was sent matters (a failed send gives the request back).
            .map(|tx| {
                tx.send(Request {
                    prompt: prompt.to_vec(),
                    options: options.clone(),
                    prefix,
                    reply,
                })
                .is_ok()
            });
        let stopped = || EngineError::Input("the generation thread has stopped".into());
        match sent {
            Some(true) => answer.recv().map_err(|_| stopped())?,
            _ => Err(stopped()),
        }
    }
}

impl Drop for GenerationService {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its batch is done.
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn serve(model: &LanguageModel, turn: &FairMutex<()>, batch: usize, rx: Receiver<Request>) {
    let mut generator = model.batch_generator(batch);
    let mut replies: HashMap<u64, Reply> = HashMap::new();
    let mut waiting: Vec<Sequence> = Vec::new();
    let mut next_key = 0u64;
    let mut enqueue = |r: Request, waiting: &mut Vec<_>, replies: &mut HashMap<u64, Reply>| {
        replies.insert(next_key, r.reply);
        waiting.push(Sequence {
            key: next_key,
            prompt: r.prompt,
            options: r.options,
            prefix: r.prefix,
        });
        next_key += 1;
    };
    loop {
        if generator.active() == 0 && waiting.is_empty() {
            match rx.recv() {
                Ok(r) => enqueue(r, &mut waiting, &mut replies),
                Err(_) => return,
            }
        }
        while let Ok(r) = rx.try_recv() {
            enqueue(r, &mut waiting, &mut replies);
        }
        let step = {
            let _turn = turn.lock();
            // On a pool thread the step takes part in its own parallel work.
            rayon::scope(|_| -> Result<Vec<Finished>, EngineError> {
                let mut finished = Vec::new();
                if generator.free() > 0 && !waiting.is_empty() {
                    let (done, rest) = generator.join(std::mem::take(&mut waiting))?;
                    waiting = rest;
                    finished.extend(done);
                }
                finished.extend(generator.step()?);
                Ok(finished)
            })
        };
        match step {
            Ok(finished) => {
                for f in finished {
                    if let Some(reply) = replies.remove(&f.key) {
                        let _ = reply.send(f.result);
                    }
                }
            }
            Err(e) => {
                // A failed pass loses the batch it ran: every sequence in it
                // (and those that were joining) gets the error; waiting ones go on.
                let message = e.to_string();
                let waiting_keys: Vec<u64> = waiting.iter().map(|w| w.key).collect();
                for (key, reply) in replies.iter() {
                    if !waiting_keys.contains(key) {
                        let _ = reply.send(Err(EngineError::Input(format!(
                            "batched generation failed: {message}"
                        ))));
                    }
                }
                replies.retain(|k, _| waiting_keys.contains(k));
                generator = model.batch_generator(batch);
            }
        }
    }
}
