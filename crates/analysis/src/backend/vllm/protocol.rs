//! vLLM's OpenAI-compatible protocol as aligntds uses it: /v1/models,
//! /tokenize and /v1/completions with token-id prompts (vLLM 0.32 answers as
//! measured in issue 11; field names from vllm/entrypoints/openai).

use serde_json::{json, Value};

use super::pool::{HttpError, Pool};
use super::ServedModel;
use crate::metrics::TopKRow;
use crate::settings::{Field, SettingError, SideName};

/// vLLM writes -inf log-probabilities as -9999.0.
const NEG_INF_AS_WRITTEN: f64 = -9999.0;

/// The model server `i` serves under `name` (or its only one).
pub(super) fn served_model(
    pool: &Pool,
    i: usize,
    url: &str,
    side: SideName,
    name: Option<&str>,
) -> Result<ServedModel, super::ConnectError> {
    let unreachable = |e: HttpError| {
        SettingError::new(
            Field::Server(side),
            format!("cannot use {url}: {}; is a vLLM server running there (it answers /health once ready)?", match e {
                HttpError::Unreachable { message, .. } => message,
                other => other.to_string(),
            }),
        )
    };
    let models = pool.get_once(i, "/v1/models").map_err(unreachable)?;
    let listed: Vec<ServedModel> = models
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some(ServedModel {
                name: m.get("id")?.as_str()?.to_string(),
                max_model_len: m.get("max_model_len")?.as_u64()? as usize,
                max_logprobs: None,
                root: m.get("root").and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect();
    let names = || {
        listed
            .iter()
            .map(|m| format!("`{}`", m.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if listed.is_empty() {
        return Err(SettingError::new(
            Field::Server(side),
            format!(
                "{url}/v1/models lists no model with an id and max_model_len; is it a vLLM server?"
            ),
        )
        .into());
    }
    match name {
        Some(name) => listed
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| {
                SettingError::new(
                    Field::ServedName(side),
                    format!("{url} serves {}, not `{name}`", names()),
                )
                .into()
            }),
        None if listed.len() == 1 => Ok(listed[0].clone()),
        None => Err(SettingError::new(
            Field::ServedName(side),
            format!(
                "{url} serves several models ({}); name the one to use",
                names()
            ),
        )
        .into()),
    }
}

/// The server's --max-logprobs, found by asking for more than the vocabulary
/// on a one-token prompt (which has no prompt log-probabilities to compute):
/// vLLM refuses with "... greater than max allowed: N". None: no limit.
pub(super) fn max_logprobs(
    pool: &Pool,
    i: usize,
    model: &str,
    token: u32,
    vocabulary: usize,
) -> Result<Option<usize>, HttpError> {
    let body = json!({
        "model": model, "prompt": [token], "max_tokens": 1, "temperature": 0,
        "prompt_logprobs": vocabulary + 1,
    });
    match pool.post_once(i, "/v1/completions", &body) {
        Ok(_) => Ok(None),
        Err(HttpError::Refused {
            message,
            status: 400,
            ..
        }) if message.contains("max allowed") => {
            let tail = message.split("max allowed:").nth(1).unwrap_or("");
            let digits: String = tail
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Ok(digits.parse().ok())
        }
        Err(e) => Err(e),
    }
}

/// The server's tokenization of `prompt` (special tokens added as the model's tokenizer adds them).
pub(super) fn tokenize(
    pool: &Pool,
    i: usize,
    model: &str,
    prompt: &str,
) -> Result<Vec<u32>, HttpError> {
    let body = json!({"model": model, "prompt": prompt, "add_special_tokens": true});
    let answer = pool.post_once(i, "/tokenize", &body)?;
    answer
        .get("tokens")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_u64().map(|x| x as u32))
                .collect()
        })
        .ok_or_else(|| HttpError::Protocol {
            url: pool.urls()[i].clone(),
            message: "/tokenize answered without `tokens`".into(),
        })
}

fn logprob(value: &Value) -> Option<f32> {
    let x = value.get("logprob")?.as_f64()?;
    Some(if x <= NEG_INF_AS_WRITTEN {
        f32::NEG_INFINITY
    } else {
        x as f32
    })
}

/// Top-k rows for `tokens[answer_start..]` from `choices[0].prompt_logprobs`:
/// per position a map "id" -> {logprob, rank} holding the actual token (with
/// its rank over the whole vocabulary) and the k best. The k best are ordered
/// by log-probability, ties by id (as the local engine orders them).
pub(super) fn prompt_rows(
    answer: &Value,
    tokens: &[u32],
    answer_start: usize,
    k: usize,
) -> Result<Vec<TopKRow>, String> {
    let positions = answer
        .pointer("/choices/0/prompt_logprobs")
        .and_then(Value::as_array)
        .ok_or("the answer has no choices[0].prompt_logprobs")?;
    if positions.len() != tokens.len() {
        return Err(format!(
            "prompt_logprobs covers {} positions for a prompt of {} tokens",
            positions.len(),
            tokens.len()
        ));
    }
    let mut rows = Vec::with_capacity(tokens.len() - answer_start);
    for t in answer_start..tokens.len() {
        let map = positions[t]
            .as_object()
            .ok_or_else(|| format!("position {t} has no log-probabilities"))?;
        let mut entries: Vec<(u32, f32)> = Vec::with_capacity(map.len());
        let mut target = None;
        for (id, v) in map {
            let id: u32 = id
                .parse()
                .map_err(|_| format!("position {t}: key {id:?} is not a token id"))?;
            let lp =
                logprob(v).ok_or_else(|| format!("position {t}: token {id} has no logprob"))?;
            if id == tokens[t] {
                let rank = v
                    .get("rank")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("position {t}: the answer token has no rank"))?;
                target = Some((lp, rank as u32));
            }
            entries.push((id, lp));
        }
        let (target_logprob, target_rank) = target
            .ok_or_else(|| format!("position {t}: the answer token {} is missing", tokens[t]))?;
        entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // The answer token is an extra entry when it is outside the k best.
        if target_rank as usize > k {
            entries.retain(|(id, _)| *id != tokens[t]);
        }
        entries.truncate(k);
        rows.push(TopKRow {
            target_logprob,
            target_rank,
            top: entries,
        });
    }
    Ok(rows)
}

/// The generated ids and their log-probabilities from `choices[0]`.
pub(super) fn generated(answer: &Value) -> Result<(Vec<u32>, Vec<f32>), String> {
    let choice = answer
        .pointer("/choices/0")
        .ok_or("the answer has no choices")?;
    let ids: Vec<u32> = choice
        .get("token_ids")
        .and_then(Value::as_array)
        .ok_or("the answer has no choices[0].token_ids (a vLLM older than 0.10 without return_token_ids?)")?
        .iter()
        .map(|v| v.as_u64().map(|x| x as u32).ok_or("a token id is not an integer"))
        .collect::<Result<_, _>>()?;
    let logprobs: Vec<f32> = choice
        .pointer("/logprobs/token_logprobs")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .map(|x| x.as_f64().map_or(f32::NAN, |x| x as f32))
                .collect()
        })
        .unwrap_or_else(|| vec![f32::NAN; ids.len()]);
    if logprobs.len() != ids.len() {
        return Err(format!(
            "{} token ids but {} log-probabilities",
            ids.len(),
            logprobs.len()
        ));
    }
    Ok((ids, logprobs))
}

/// Sets a completion request's sampling: the temperature and cuts, and a
/// per-request seed (vLLM's `seed`, a signed 64-bit integer) drawn from the
/// sequence's stream at `position`, the sequence's length when the request
/// starts, so a continuation after a stop the server made but the local
/// rules did not (or the next step of a session) draws afresh yet
/// reproducibly. vLLM's `top_k` 0 is no cut, as here.
pub fn sample(body: &mut serde_json::Value, sampling: &aligntds_engine::Sampling, position: usize) {
    let seed = (sampling.uniform(position) * (1u64 << 53) as f64) as i64;
    body["temperature"] = serde_json::json!(sampling.temperature);
    body["top_p"] = serde_json::json!(sampling.top_p);
    body["top_k"] = serde_json::json!(sampling.top_k);
    body["seed"] = serde_json::json!(seed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape vLLM 0.32 answers with (trimmed from a real answer).
    #[test]
    fn prompt_logprobs_become_top_k_rows_with_the_answer_tokens_rank() {
        let answer = json!({"choices": [{"prompt_logprobs": [
            null,
            {"5": {"logprob": -0.1, "rank": 1, "decoded_token": "a"},
             "7": {"logprob": -2.5, "rank": 2, "decoded_token": "b"}},
            {"9": {"logprob": -9999.0, "rank": 40, "decoded_token": "c"},
             "3": {"logprob": -0.5, "rank": 1, "decoded_token": "d"},
             "4": {"logprob": -0.5, "rank": 2, "decoded_token": "e"}}
        ]}]});
        let rows = prompt_rows(&answer, &[1, 5, 9], 1, 2).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].target_rank, rows[0].target_logprob), (1, -0.1));
        assert_eq!(rows[0].top, vec![(5, -0.1), (7, -2.5)]);
        // Outside the k best: the extra entry goes, -9999 is -inf, ties by id.
        assert_eq!(rows[1].target_rank, 40);
        assert_eq!(rows[1].target_logprob, f32::NEG_INFINITY);
        assert_eq!(rows[1].top, vec![(3, -0.5), (4, -0.5)]);
        assert!(prompt_rows(&answer, &[1, 6, 9], 1, 2)
            .unwrap_err()
            .contains("missing"));
        assert!(prompt_rows(&answer, &[1, 5], 1, 2)
            .unwrap_err()
            .contains("positions"));
    }

    #[test]
    fn generated_ids_come_with_their_logprobs() {
        let answer = json!({"choices": [{"token_ids": [198, 2], "logprobs": {"token_logprobs": [-1.5, -0.25]}}]});
        assert_eq!(
            generated(&answer).unwrap(),
            (vec![198, 2], vec![-1.5, -0.25])
        );
        assert!(generated(&json!({"choices": [{}]}))
            .unwrap_err()
            .contains("token_ids"));
    }
}
