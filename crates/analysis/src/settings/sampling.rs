//! Sampled answers: the settings checked, and each record's draws as the
//! engine takes them. A record's stream derives from the seed, its id and
//! the sample's index, so its answer is the same whatever records run
//! beside it, in whatever order, and after a resume.

pub use aligntds_formats::summary::SamplingSettings;

use super::{Field, SettingError};

/// The keys (and flags) that turn sampling on.
pub const KEYS: [&str; 5] = ["temperature", "top_p", "top_k_sampling", "seed", "samples"];

/// The settings four optional values give (a front end's flags or a
/// request's fields): None when none is given (greedy), else the given ones
/// over the defaults.
pub fn from_values(
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    seed: Option<u64>,
) -> Option<SamplingSettings> {
    if temperature.is_none() && top_p.is_none() && top_k.is_none() && seed.is_none() {
        return None;
    }
    let d = SamplingSettings::default();
    Some(SamplingSettings {
        temperature: temperature.unwrap_or(d.temperature),
        top_p: top_p.unwrap_or(d.top_p),
        top_k: top_k.unwrap_or(d.top_k),
        seed: seed.unwrap_or(d.seed),
        samples: 1,
    })
}

/// `samples` answers per query over `sampling`: several answers turn
/// sampling on (over the defaults) where no other setting did.
pub fn with_samples(
    sampling: Option<SamplingSettings>,
    samples: Option<usize>,
) -> Option<SamplingSettings> {
    match samples {
        None => sampling,
        Some(samples) => Some(SamplingSettings {
            samples,
            ..sampling.unwrap_or_default()
        }),
    }
}

/// Refuses values that cannot sample, naming the key.
pub fn check(sampling: Option<&SamplingSettings>) -> Result<(), SettingError> {
    let Some(s) = sampling else {
        return Ok(());
    };
    if s.samples == 0 {
        return Err(SettingError::new(
            Field::Sampling("samples"),
            "must be at least 1 (answers drawn per query)",
        ));
    }
    if !(s.temperature.is_finite() && s.temperature > 0.0) {
        return Err(SettingError::new(
            Field::Sampling("temperature"),
            format!(
                "{} is not above 0; leave the sampling settings out for greedy answers",
                s.temperature
            ),
        ));
    }
    if !(s.top_p > 0.0 && s.top_p <= 1.0) {
        return Err(SettingError::new(
            Field::Sampling("top_p"),
            format!("{} is not in (0, 1]", s.top_p),
        ));
    }
    Ok(())
}

/// The draws of sample `sample` of record `id` (a record's id in the data:
/// the first of several samples draws what a run of one sample draws).
pub fn for_record(s: &SamplingSettings, id: &str, sample: usize) -> aligntds_engine::Sampling {
    aligntds_engine::Sampling {
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        stream: aligntds_engine::Sampling::stream(
            s.seed,
            &[id.as_bytes(), sample.to_string().as_bytes()],
        ),
    }
}
