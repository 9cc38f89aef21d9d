//! vLLM servers as a side's backend. Only token ids travel: prompts are
//! tokenized and rendered locally, the servers score them through
//! `prompt_logprobs` (the answer token's exact log-probability and rank over
//! the whole vocabulary, plus the k best) and generate greedily with the
//! token ids returned. The checks before work ([`VllmBackend::connect`]) make
//! sure every server serves the named model, takes the k needed and
//! tokenizes as the local side does.

pub mod pool;
mod protocol;

use std::sync::Arc;

use aligntds_engine::{GenerateOptions, Generation, StopReason, TextModel};
use serde_json::json;

pub use pool::{normalize_url, HttpError, Pool, ServerOptions, ServerStats};

use crate::backend::{Backend, BackendError, ConnectError, Rows, Scored};
use crate::metrics::{TopKRow, COMPAT_KEEP};
use crate::settings::{Field, SettingError, SideName};

/// Tokens every remote side keeps per position at least: the top-10 lists
/// of the outputs and the report.
pub const MIN_LOGPROBS: usize = 10;

/// What a side's servers serve, as the checks found it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedModel {
    pub name: String,
    pub max_model_len: usize,
    /// The server's --max-logprobs; None when it allows any number.
    pub max_logprobs: Option<usize>,
    /// The model path or id the server loaded (its /v1/models `root`).
    pub root: Option<String>,
}

/// One side computed by vLLM servers (one or several replicas of one model).
pub struct VllmBackend {
    pool: Pool,
    served: ServedModel,
    /// Log-probabilities requested per position: the study's top-k, at least
    /// [`MIN_LOGPROBS`], and the original's 30 where the server allows it.
    k: usize,
    /// The side's local text model, whose stop rules generation follows.
    text: Arc<TextModel>,
}

impl VllmBackend {
    /// Checks every server of a side before any work: it answers, serves the
    /// named model (or exactly one model when no name is given), all replicas
    /// serve the same model, it accepts `top_k` log-probabilities per
    /// position, and its tokenizer gives `prompt` (the first record's rendered
    /// context) the same ids as `text`'s.
    pub fn connect(
        side: SideName,
        urls: &[String],
        served_name: Option<&str>,
        options: ServerOptions,
        text: Arc<TextModel>,
        top_k: Option<usize>,
        prompt: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let urls = urls
            .iter()
            .map(|u| normalize_url(u).map_err(|m| SettingError::new(Field::Server(side), m)))
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err(
                SettingError::new(Field::Server(side), "give at least one server URL").into(),
            );
        }
        let pool = Pool::new(&urls, options);
        let mut served: Option<(String, ServedModel)> = None;
        for (i, url) in urls.iter().enumerate() {
            let found = protocol::served_model(&pool, i, url, side, served_name)?;
            match &served {
                None => served = Some((url.clone(), found)),
                Some((first_url, first)) => {
                    if first.name != found.name || first.max_model_len != found.max_model_len {
                        return Err(SettingError::new(
                            Field::Server(side),
                            format!(
                                "the servers of one side must serve the same model: {first_url} serves `{}` (max_model_len {}), {url} serves `{}` (max_model_len {})",
                                first.name, first.max_model_len, found.name, found.max_model_len
                            ),
                        )
                        .into());
                    }
                }
            }
        }
        let (_, mut served) = served.expect("at least one server was checked");
        // Generation alone needs no prompt log-probabilities.
        let needed = top_k.map_or(0, |k| k.max(MIN_LOGPROBS));
        let probe_token = text
            .tokenizer
            .encode_plain("a")
            .ok()
            .and_then(|ids| ids.first().copied())
            .unwrap_or(0);
        for (i, url) in urls.iter().enumerate() {
            let allowed = protocol::max_logprobs(
                &pool,
                i,
                &served.name,
                probe_token,
                text.tokenizer.vocab_size(),
            )
            .map_err(|source| ConnectError::Server {
                side,
                source: Box::new(source),
            })?;
            if let Some(max) = allowed {
                if max < needed {
                    return Err(SettingError::new(
                        Field::Server(side),
                        format!(
                            "{url} returns at most {max} log-probabilities per position (vLLM's --max-logprobs), but this study needs {needed} (top-k {}, and at least {MIN_LOGPROBS}); restart the server with --max-logprobs {} or more, or lower the top-k",
                            top_k.unwrap_or(0),
                            needed.max(COMPAT_KEEP)
                        ),
                    )
                    .into());
                }
            }
            served.max_logprobs = match (served.max_logprobs, allowed) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let Some(prompt) = prompt {
            let ours = text.tokenizer.encode(prompt).map_err(|e| {
                SettingError::new(
                    Field::Model(side),
                    format!("cannot tokenize the first record's prompt: {e}"),
                )
            })?;
            for (i, url) in urls.iter().enumerate() {
                let theirs =
                    protocol::tokenize(&pool, i, &served.name, prompt).map_err(|source| {
                        ConnectError::Server {
                            side,
                            source: Box::new(source),
                        }
                    })?;
                if let Some(message) = first_difference(&text, &ours, &theirs) {
                    return Err(SettingError::new(
                        Field::Model(side),
                        format!(
                            "`{}` and {url} (serving `{}`) tokenize the first record's prompt differently: {message}; give the model the server serves",
                            text.reference, served.name
                        ),
                    )
                    .into());
                }
            }
        }
        let k = needed.max(MIN_LOGPROBS).max(
            served
                .max_logprobs
                .map_or(COMPAT_KEEP, |m| m.min(COMPAT_KEEP)),
        );
        Ok(Self {
            pool,
            served,
            k,
            text,
        })
    }

    pub fn served(&self) -> &ServedModel {
        &self.served
    }

    /// Log-probabilities requested per position.
    pub fn logprobs(&self) -> usize {
        self.k
    }

    pub fn urls(&self) -> Vec<String> {
        self.pool.urls()
    }

    fn remote_error(&self, e: HttpError) -> BackendError {
        BackendError::Remote {
            backend: format!("vLLM `{}`", self.served.name),
            message: e.to_string(),
        }
    }
}

/// Where two tokenizations part, naming the token on each side.
fn first_difference(text: &TextModel, ours: &[u32], theirs: &[u32]) -> Option<String> {
    let piece = |id: u32| {
        text.tokenizer
            .inner()
            .id_to_token(id)
            .unwrap_or_else(|| "?".into())
    };
    let at = ours.iter().zip(theirs).position(|(a, b)| a != b);
    match at {
        Some(i) => Some(format!(
            "token {i} is id {} ({:?}) locally but id {} ({:?}) on the server",
            ours[i],
            piece(ours[i]),
            theirs[i],
            piece(theirs[i])
        )),
        None if ours.len() != theirs.len() => Some(format!(
            "the local tokenizer gives {} tokens, the server {}",
            ours.len(),
            theirs.len()
        )),
        None => None,
    }
}

struct RemoteScored {
    rows: Vec<TopKRow>,
}

impl Scored for RemoteScored {
    fn answer_len(&self) -> usize {
        self.rows.len()
    }

    fn rows(&mut self, first: usize, n: usize) -> Result<Rows<'_>, BackendError> {
        Ok(Rows::TopK(&self.rows[first..first + n]))
    }
}

impl Backend for VllmBackend {
    fn session<'m>(
        &'m self,
        prompt: &[u32],
        _reserve: usize,
        top_k: usize,
        eos: &[u32],
    ) -> Result<Box<dyn crate::backend::Session<'m> + 'm>, BackendError> {
        // vLLM's prefix cache makes each step's request cost about one token.
        Ok(Box::new(crate::backend::ScoringSession::new(
            self, prompt, top_k, eos,
        )))
    }

    fn server_identity(&self) -> Option<aligntds_formats::summary::ServerIdentity> {
        Some(aligntds_formats::summary::ServerIdentity {
            served_model: self.served().name.clone(),
            max_model_len: self.served().max_model_len,
            logprobs: self.logprobs(),
        })
    }

    fn weights(&self) -> String {
        format!("vllm:{}", self.served.name)
    }

    fn describe(&self) -> Vec<(&'static str, serde_json::Value)> {
        let served = self.served();
        let max_logprobs = served
            .max_logprobs
            .map_or("unlimited".to_string(), |m| m.to_string());
        vec![
            ("servers", self.urls().into()),
            ("served_model", served.name.clone().into()),
            ("server_model_path", served.root.clone().into()),
            ("max_model_len", served.max_model_len.into()),
            ("max_logprobs", max_logprobs.into()),
        ]
    }

    fn logits_width(&self) -> Option<usize> {
        None
    }

    /// One position stays free: a completion request always generates a token.
    fn context_length(&self) -> usize {
        self.served.max_model_len.saturating_sub(1)
    }

    fn chunk_rows(&self) -> usize {
        usize::MAX
    }

    fn concurrency(&self) -> usize {
        self.pool.capacity()
    }

    fn server_stats(&self) -> Vec<ServerStats> {
        self.pool.stats()
    }

    fn prepare<'a>(
        &'a self,
        tokens: &[u32],
        answer_start: usize,
        top_k: usize,
    ) -> Result<Box<dyn Scored + 'a>, BackendError> {
        let body = json!({
            "model": self.served.name,
            "prompt": tokens,
            "max_tokens": 1,
            "temperature": 0,
            "prompt_logprobs": self.k.max(top_k),
        });
        let answer = self
            .pool
            .post("/v1/completions", &body, tokens.len() as u64)
            .map_err(|e| self.remote_error(e))?;
        let rows = protocol::prompt_rows(&answer, tokens, answer_start, self.k.max(top_k))
            .map_err(|m| {
                self.remote_error(HttpError::Protocol {
                    url: self.served.name.clone(),
                    message: m,
                })
            })?;
        Ok(Box::new(RemoteScored { rows }))
    }

    /// Generation by the local engine's rules: the eos ids and stop strings
    /// are applied here to the returned ids (the server is asked to stop on
    /// them too, only to save work), so answers end where a local run's do.
    /// Greedy, or sampled by the server with a seed from the sequence's
    /// stream: reproducible on that server, not equal to the local engine's
    /// draws (vLLM draws with its own generator).
    fn generate(
        &self,
        prompt: &[u32],
        options: &GenerateOptions,
    ) -> Result<Generation, BackendError> {
        let (mut tokens, mut logprobs) = (Vec::new(), Vec::new());
        let limit = self.served.max_model_len;
        let finished = |reason| {
            Ok(Generation {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                stop_reason: reason,
                hidden_states: Vec::new(),
            })
        };
        if options.max_new_tokens == 0 {
            return finished(StopReason::MaxNewTokens);
        }
        loop {
            let room = limit.saturating_sub(prompt.len() + tokens.len());
            let want = options.max_new_tokens - tokens.len();
            // Checked before each request; one in flight is waited for.
            if options.cancel.is_cancelled() {
                return Ok(Generation {
                    tokens,
                    logprobs,
                    stop_reason: StopReason::Cancelled,
                    hidden_states: Vec::new(),
                });
            }
            if room == 0 {
                return Ok(Generation {
                    tokens,
                    logprobs,
                    stop_reason: StopReason::ContextFull,
                    hidden_states: Vec::new(),
                });
            }
            let sequence: Vec<u32> = prompt.iter().chain(&tokens).copied().collect();
            let mut body = json!({
                "model": self.served.name,
                "prompt": sequence,
                "max_tokens": want.min(room),
                "temperature": 0,
                "logprobs": 0,
                "return_token_ids": true,
                "ignore_eos": true,
                "stop_token_ids": options.eos_token_ids,
                "stop": options.stop_strings,
                "include_stop_str_in_output": true,
                "skip_special_tokens": false,
            });
            if let Some(sampling) = &options.sampling {
                // Keyed by the absolute position, so a step-by-step session
                // (one token per request) draws a new seed at every step too.
                protocol::sample(&mut body, sampling, prompt.len() + tokens.len());
            }
            let answer = self
                .pool
                .post("/v1/completions", &body, want.min(room) as u64)
                .map_err(|e| self.remote_error(e))?;
            let (ids, lps) = protocol::generated(&answer).map_err(|m| {
                self.remote_error(HttpError::Protocol {
                    url: self.served.name.clone(),
                    message: m,
                })
            })?;
            if ids.is_empty() {
                return Err(self.remote_error(HttpError::Protocol {
                    url: self.served.name.clone(),
                    message: "generated no tokens".into(),
                }));
            }
            let start = tokens.len();
            tokens.extend(ids);
            logprobs.extend(lps);
            if let Some(reason) =
                self.stopped(&mut tokens, &mut logprobs, start, prompt.len(), options)?
            {
                return Ok(Generation {
                    tokens,
                    logprobs,
                    stop_reason: reason,
                    hidden_states: Vec::new(),
                });
            }
        }
    }
}

impl VllmBackend {
    /// Applies the local engine's stop rules, token by token from `start`, in
    /// its order (eos, stop string, max new tokens, full context); cuts the
    /// answer where a rule fires.
    fn stopped(
        &self,
        tokens: &mut Vec<u32>,
        logprobs: &mut Vec<f32>,
        start: usize,
        prompt: usize,
        options: &GenerateOptions,
    ) -> Result<Option<StopReason>, BackendError> {
        let tok = &self.text.tokenizer;
        let any_stop = !options.stop_strings.is_empty() && {
            let text = tok.decode(tokens, false)?;
            options
                .stop_strings
                .iter()
                .any(|s| !s.is_empty() && text.contains(s.as_str()))
        };
        for n in start + 1..=tokens.len() {
            let reason = if options.eos_token_ids.contains(&tokens[n - 1]) {
                Some((n, StopReason::Eos))
            } else if any_stop {
                aligntds_engine::find_stop(tok, &tokens[..n], &options.stop_strings)?
                    .map(|(keep, s)| (keep, StopReason::StopString(s)))
            } else {
                None
            }
            .or_else(|| (n >= options.max_new_tokens).then_some((n, StopReason::MaxNewTokens)))
            .or_else(|| {
                (prompt + n >= self.served.max_model_len).then_some((n, StopReason::ContextFull))
            });
            if let Some((keep, reason)) = reason {
                tokens.truncate(keep);
                logprobs.truncate(keep);
                return Ok(Some(reason));
            }
        }
        Ok(None)
    }
}
