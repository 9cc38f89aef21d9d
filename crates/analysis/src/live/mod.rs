//! The study one answer at a time, as it is written: one side chooses each
//! answer token (greedily, or from a given prefix) and both sides give their
//! next-token distributions at that position, each from its own key/value
//! cache fed one token per step ([`aligntds_engine::Stepper`]), so the time
//! per token stays flat along the answer. Every position is reported as soon
//! as both sides have it, with the metrics `analyze` computes (a side on vLLM
//! servers gives each position's row through the backend seam instead; see
//! [`side`]); the finished
//! answer is an [`ExampleResult`] that [`save_run`] writes as a run folder.
//! `aligntds serve` streams this to its live page.

use std::time::{Duration, Instant};

use aligntds_engine::tokenizer::PieceCursor;
use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::PositionRecord;
use aligntds_formats::summary::{
    Category, Context, ContextKind, Manifest, RecordedSettings, ResponseSource, RunIdentity,
};

pub(crate) mod settings;
mod side;

pub use settings::{Chooser, LiveError, LiveLimits, LiveRequest, LiveSettings};
pub use side::LiveSide;

use crate::input::context::{default_stops, render};
use crate::input::dataset::Record;
use crate::settings::{Field, SettingError, SideName};
use crate::study::record::{check_vocabularies, record_of, RunError};
use crate::study::StudyError;
use aligntds_stats::ExampleResult;

/// A loaded pair, ready to stream answers.
pub struct LivePair {
    pub aligned: LiveSide,
    pub base: LiveSide,
    pub settings: LiveSettings,
    identity: RunIdentity,
}

/// One streamed position: the row `analyze` writes to positions.parquet, and
/// who chose the token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveToken {
    #[serde(flatten)]
    pub record: PositionRecord,
    /// `aligned` or `base` (generated), `prefix` (given) or `replace` (swapped in).
    pub chosen_by: &'static str,
    /// The category of the token's rank under the aligned side: for a token
    /// the base side chose (whose base rank is 1 by construction), where the
    /// aligned model would have put it.
    pub aligned_category: Category,
}

/// A finished live answer.
pub struct LiveOutcome {
    /// The answer as `analyze` would record it (positions kept: up to a stop string).
    pub result: ExampleResult,
    /// Who chose each kept position (see [`LiveToken::chosen_by`]).
    pub chosen_by: Vec<&'static str>,
    /// `eos`, `stop string "…"`, `max_new_tokens`, `context_full`, `cancelled` or `time_limit`.
    pub stop_reason: String,
    /// Positions streamed, including any dropped at a stop string.
    pub streamed: usize,
    pub seconds: f64,
}

impl LivePair {
    /// Loads both sides (a model shared by both loads once); servers are
    /// checked before any local weights load.
    pub fn load(settings: LiveSettings) -> Result<Self, StudyError> {
        settings.validate()?;
        let sides = [
            (SideName::Aligned, &settings.aligned),
            (SideName::Base, &settings.base),
        ];
        let texts = crate::study::sides::load_texts(&sides)?;
        check_vocabularies(&texts[0], &texts[1])?;
        // Servers are checked with a short query's prompt before any local weights load.
        let probe = Record::query("probe", "Hello?");
        let probes: Vec<Option<String>> = sides
            .iter()
            .zip(&texts)
            .map(|((_, s), text)| render(&s.context, text, &probe).ok())
            .collect();
        let plan = crate::study::sides::LoadPlan {
            runtime: &settings.runtime,
            server_options: settings.server_options,
            top_k: settings.top_k,
            max_new_tokens: settings.limits.max_new_tokens,
        };
        let loaded = crate::study::sides::load_backends(&sides, texts, &probes, &plan)?;
        let identity = crate::study::sides::identity(
            format!("aligntds {} (serve)", env!("CARGO_PKG_VERSION")),
            &loaded,
            &[],
            &settings.runtime,
            recorded(
                &settings,
                &settings.aligned.context,
                &settings.base.context,
                0,
            ),
        )?;
        let mut live = loaded.into_iter().map(|l| LiveSide {
            text: l.side.text,
            backend: l.side.backend,
            model: l.model,
        });
        let (Some(aligned), Some(base)) = (live.next(), live.next()) else {
            unreachable!("a live pair has two sides")
        };
        Ok(Self {
            aligned,
            base,
            settings,
            identity,
        })
    }

    /// Checks a request against the limits and the vocabulary, naming the field.
    pub fn check(&self, request: &LiveRequest) -> Result<(), LiveError> {
        let limits = &self.settings.limits;
        let invalid = |field, message: String| Err(LiveError::Invalid { field, message });
        if request.query.trim().is_empty() {
            return invalid("query", "is empty; type a query".into());
        }
        if request.query.len() > limits.max_query_bytes {
            return Err(LiveError::TooLarge {
                field: "query",
                message: format!(
                    "is {} bytes; this server takes at most {}",
                    request.query.len(),
                    limits.max_query_bytes
                ),
            });
        }
        if let Some(system) = &request.system {
            if system.len() > limits.max_query_bytes {
                return Err(LiveError::TooLarge {
                    field: "system",
                    message: format!(
                        "is {} bytes; this server takes at most {}",
                        system.len(),
                        limits.max_query_bytes
                    ),
                });
            }
        }
        match request.max_new_tokens {
            Some(0) => return invalid("max_new_tokens", "must be at least 1".into()),
            Some(n) if n > limits.max_new_tokens => {
                return Err(LiveError::TooLarge {
                    field: "max_new_tokens",
                    message: format!("{n} is over this server's cap of {}", limits.max_new_tokens),
                })
            }
            _ => {}
        }
        for (field, kind) in [
            ("aligned_context", request.aligned_context),
            ("base_context", request.base_context),
        ] {
            if matches!(kind, Some(ContextKind::Input | ContextKind::Custom)) {
                return invalid(
                    field,
                    "takes chat, template, plain or urial here (input and custom need settings a query does not carry)".into(),
                );
            }
        }
        let cap = self
            .aligned
            .context_length()
            .min(self.base.context_length());
        if request.prefix_ids.len() > cap {
            return Err(LiveError::TooLarge {
                field: "prefix_ids",
                message: format!(
                    "holds {} tokens; the model's context is {cap}",
                    request.prefix_ids.len()
                ),
            });
        }
        let vocabulary = self.aligned.vocabulary().min(self.base.vocabulary()) as u32;
        if let Some(bad) = request
            .prefix_ids
            .iter()
            .chain(&request.replace)
            .find(|&&id| id >= vocabulary)
        {
            return invalid(
                if request.replace == Some(*bad) {
                    "replace"
                } else {
                    "prefix_ids"
                },
                format!("token id {bad} is outside the vocabulary of {vocabulary} tokens"),
            );
        }
        if let Err(e) = crate::settings::sampling::check(request.sampling().as_ref()) {
            return invalid(
                match e.field {
                    Field::Sampling(key) => key,
                    _ => "temperature",
                },
                e.message,
            );
        }
        if request.top_k_sampling == Some(0) {
            return invalid("top_k_sampling", "must be at least 1".into());
        }
        if request.replace.is_some() && request.prefix_ids.is_empty() {
            return invalid(
                "replace",
                "replaces the last kept token, but prefix_ids is empty".into(),
            );
        }
        Ok(())
    }

    /// The contexts a request's sides see.
    fn contexts(&self, request: &LiveRequest) -> (Context, Context) {
        let side = |kind: Option<ContextKind>, own: &Context| {
            let mut context = match kind {
                Some(k) if k != own.kind => Context::of(k),
                _ => own.clone(),
            };
            if request.system.is_some() {
                context.system = request.system.clone();
            }
            context
        };
        (
            side(request.aligned_context, &self.settings.aligned.context),
            side(request.base_context, &self.settings.base.context),
        )
    }

    /// Streams one answer: `sink` gets each position as soon as both sides
    /// have it; `cancelled` is asked after every position (a client that
    /// left). The request must have passed [`Self::check`].
    pub fn stream(
        &self,
        request: &LiveRequest,
        cancelled: &dyn Fn() -> bool,
        sink: &mut dyn FnMut(&LiveToken),
    ) -> Result<LiveOutcome, LiveError> {
        self.run(request, false, cancelled, sink)
    }

    /// Scores a given answer and writes nothing more: the answer is
    /// tokenized as `analyze` tokenizes a data set's answer (a trailing
    /// end-of-turn marker becomes the aligned side's eos token), teacher-forced
    /// through both sides; the outcome's stop reason is `dataset`, as
    /// analyze records it. `request.prefix_ids`, `with` and `replace` must be unset.
    pub fn score(
        &self,
        request: &LiveRequest,
        answer: &str,
        cancelled: &dyn Fn() -> bool,
        sink: &mut dyn FnMut(&LiveToken),
    ) -> Result<LiveOutcome, LiveError> {
        if !request.prefix_ids.is_empty() || request.replace.is_some() || request.with.is_some() {
            return Err(LiveError::Invalid {
                field: "prefix_ids",
                message: "a scored answer is given whole; leave prefix_ids, with and replace unset"
                    .into(),
            });
        }
        let mut record = Record::query("live", request.query.clone());
        record.output = Some(answer.to_string());
        let (ids, eos_replaced) =
            crate::study::answer::dataset_answer(&self.aligned.text, &record)?.unwrap_or_default();
        if ids.is_empty() {
            return Err(LiveError::Invalid {
                field: "answer",
                message: "encodes to no tokens; give an answer to score".into(),
            });
        }
        let given = LiveRequest {
            prefix_ids: ids,
            ..request.clone()
        };
        let mut outcome = self.run(&given, true, cancelled, sink)?;
        outcome.result.example.eos_replaced = eos_replaced;
        Ok(outcome)
    }

    /// [`Self::stream`], or with `given_only` the given prefix alone.
    fn run(
        &self,
        request: &LiveRequest,
        given_only: bool,
        cancelled: &dyn Fn() -> bool,
        sink: &mut dyn FnMut(&LiveToken),
    ) -> Result<LiveOutcome, LiveError> {
        self.check(request)?;
        let started = Instant::now();
        let time_limit = Duration::from_secs_f64(self.settings.limits.time_limit_seconds.max(0.0));
        let (aligned_context, base_context) = self.contexts(request);
        let record = Record::query("live", request.query.clone());
        let a_text =
            render(&aligned_context, &self.aligned.text, &record).map_err(RunError::from)?;
        let b_text = render(&base_context, &self.base.text, &record).map_err(RunError::from)?;
        let a_prompt = self.aligned.text.tokenizer.encode(&a_text)?;
        let b_prompt = self.base.text.tokenizer.encode(&b_text)?;
        for (side, prompt) in [("aligned", &a_prompt), ("base", &b_prompt)] {
            if prompt.is_empty() {
                return Err(LiveError::Invalid {
                    field: "query",
                    message: format!("the {side} context encodes to no tokens"),
                });
            }
        }
        let chooser = request.with.unwrap_or(Chooser::Aligned);
        // As analyze draws for a record with the id `live` (sample 0).
        let sampling = request
            .sampling()
            .map(|s| crate::settings::sampling::for_record(&s, "live", 0));
        let mut given = request.prefix_ids.clone();
        if let (Some(id), Some(last)) = (request.replace, given.last_mut()) {
            *last = id;
        }
        let new_tokens = request
            .max_new_tokens
            .unwrap_or(self.settings.limits.default_new_tokens);
        let (chooser_side, chooser_context) = match chooser {
            Chooser::Aligned => (&self.aligned, &aligned_context),
            Chooser::Base => (&self.base, &base_context),
        };
        let mut stops = self.settings.stops.clone();
        stops.extend(
            default_stops(chooser_context.kind)
                .iter()
                .map(|s| s.to_string()),
        );
        let eos = chooser_side.text.eos_token_ids.clone();
        let reserve = given.len() + new_tokens;
        let (top_k, thresholds) = (self.settings.top_k, self.settings.thresholds);
        let mut a = self.aligned.start(&a_prompt, reserve, top_k)?;
        let mut b = self.base.start(&b_prompt, reserve, top_k)?;
        let tok = &self.aligned.text.tokenizer;
        let mut cursor = PieceCursor::default();
        let mut answer: Vec<u32> = Vec::new();
        let mut positions: Vec<PositionRecord> = Vec::new();
        let mut chosen: Vec<&'static str> = Vec::new();
        let mut generated = 0usize;
        let stop_reason = loop {
            let t = answer.len();
            let (token, by) = if t < given.len() {
                let replaced = request.replace.is_some() && t + 1 == given.len();
                (given[t], if replaced { "replace" } else { "prefix" })
            } else {
                generated += 1;
                // Draw `t` of the request's stream: a branch continuing a
                // sampled answer's prefix draws as the answer did.
                let picked = match chooser {
                    Chooser::Aligned => a.choose(sampling.as_ref(), t)?,
                    Chooser::Base => b.choose(sampling.as_ref(), t)?,
                };
                (picked, chooser.as_str())
            };
            answer.push(token);
            let m = side::metrics(a.view(token)?, b.view(token)?, token, top_k, thresholds);
            let aligned_category = Category::of(m.aligned_rank, thresholds);
            let decode = |ids: &[u32], logprobs: &[f32]| {
                crate::study::record::top_tokens(tok, ids, logprobs)
            };
            let text = tok.decode(&[token], false)?;
            let piece = tok.inner().id_to_token(token).unwrap_or_default();
            let share = cursor.next(tok, &answer, false)?;
            let (aligned_top, base_top) = (
                decode(&m.aligned_top_ids, &m.aligned_top_logprobs),
                decode(&m.base_top_ids, &m.base_top_logprobs),
            );
            let live = LiveToken {
                record: record_of(t, token, [&text, &piece, &share], aligned_top, base_top, m),
                chosen_by: by,
                aligned_category,
            };
            sink(&live);
            positions.push(live.record);
            chosen.push(by);
            if given_only && answer.len() == given.len() {
                break "dataset".to_string();
            }
            if t >= given.len() {
                if eos.contains(&token) {
                    break "eos".to_string();
                }
                let fresh = &answer[given.len()..];
                if let Some((keep, stop)) =
                    aligntds_engine::find_stop(&chooser_side.text.tokenizer, fresh, &stops)?
                {
                    // As analyze does: the stop's token goes, then a closing fence.
                    answer.truncate(given.len() + keep);
                    let mut kept = answer[given.len()..].to_vec();
                    if !kept.is_empty() {
                        crate::study::answer::trim_closing_fence(
                            &chooser_side.text.tokenizer,
                            &mut kept,
                        )?;
                    }
                    answer.truncate(given.len() + kept.len());
                    break format!("stop string {stop:?}");
                }
                if generated >= new_tokens {
                    break "max_new_tokens".to_string();
                }
            }
            if cancelled() {
                break "cancelled".to_string();
            }
            if started.elapsed() > time_limit {
                break "time_limit".to_string();
            }
            if !a.fits_one() || !b.fits_one() {
                break "context_full".to_string();
            }
            crate::backend::push_both(a.as_mut(), b.as_mut(), token)?;
        };
        let streamed = positions.len();
        positions.truncate(answer.len());
        chosen.truncate(answer.len());
        // The kept answer's shares as analyze computes them (the last token's
        // share may differ from the streamed one where it ends inside a character).
        let shares = tok.pieces(&answer)?;
        for (p, share) in positions.iter_mut().zip(shares) {
            p.text = share;
        }
        let count = |c: Category| positions.iter().filter(|p| p.category == c).count() as u32;
        let example = ExampleLine {
            id: "live".into(),
            query: request.query.clone(),
            aligned_context: a_text,
            base_context: b_text,
            answer: tok.decode(&answer, false)?,
            answer_ids: answer,
            source: if given_only { "dataset" } else { "generate" }.into(),
            stop_reason: stop_reason.clone(),
            generation_seconds: started.elapsed().as_secs_f64(),
            unshifted: count(Category::Unshifted),
            marginal: count(Category::Marginal),
            shifted: count(Category::Shifted),
            ..Default::default()
        };
        Ok(LiveOutcome {
            result: ExampleResult {
                example,
                positions,
                compared: Vec::new(),
            },
            chosen_by: chosen,
            stop_reason,
            streamed,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Writes finished live answers as a run folder in `analyze`'s formats
    /// (`aligntds report` opens it). `dir` must be new or empty.
    pub fn save_run(
        &self,
        dir: &std::path::Path,
        results: &[ExampleResult],
        contexts: (&Context, &Context),
        max_new_tokens: usize,
    ) -> Result<aligntds_formats::summary::Summary, StudyError> {
        if dir.exists()
            && std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(SettingError::new(
                Field::Out,
                format!(
                    "{} exists and is not empty; choose a new name",
                    dir.display()
                ),
            )
            .into());
        }
        std::fs::create_dir_all(dir).map_err(|e| crate::study::folder::FolderError::File {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let folder = crate::study::folder::RunFolder::lock(dir)?;
        let mut identity = self.identity.clone();
        identity.settings = recorded(&self.settings, contexts.0, contexts.1, max_new_tokens);
        let fingerprint =
            crate::hashing::fingerprint(&serde_json::to_value(&identity).unwrap_or_default());
        let manifest = Manifest {
            identity,
            shard: None,
            fingerprint,
            timings: None,
            merged_from: None,
            servers: crate::study::sides::server_uses([
                ("aligned", &self.aligned.backend),
                ("base", &self.base.backend),
            ]),
            group_by: None,
        };
        Ok(crate::study::output::write_run(
            folder.dir(),
            results,
            manifest,
            200,
        )?)
    }

    /// The contexts a request's sides see (for saving its answers).
    pub fn request_contexts(&self, request: &LiveRequest) -> (Context, Context) {
        self.contexts(request)
    }
}

fn recorded(
    settings: &LiveSettings,
    aligned: &Context,
    base: &Context,
    max_new_tokens: usize,
) -> RecordedSettings {
    RecordedSettings {
        aligned_context: aligned.clone(),
        base_context: base.clone(),
        response: ResponseSource::Generate,
        max_new_tokens: if max_new_tokens == 0 {
            settings.limits.default_new_tokens
        } else {
            max_new_tokens
        },
        stops: settings.stops.clone(),
        top_k: settings.top_k,
        thresholds: settings.thresholds,
        compare: Vec::new(),
        sampling: None,
        answered_by: None,
        handover: None,
    }
}
