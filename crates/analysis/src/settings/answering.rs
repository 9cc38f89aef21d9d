//! Who answers and how many times: `answered_by` names a side of the study,
//! and several answers per query need answers that are drawn.

use super::{Field, ResponseSource, SettingError, StudySettings, ALIGNED_SIDE, BASE_SIDE};

/// Refuses an answering side the study does not have, and several samples
/// of answers that are read from the data set rather than drawn.
pub(super) fn check(s: &StudySettings) -> Result<(), SettingError> {
    if let Some(name) = &s.answered_by {
        let known: Vec<&str> = [ALIGNED_SIDE, BASE_SIDE]
            .into_iter()
            .chain(s.compare.iter().map(|c| c.name.as_str()))
            .collect();
        if !known.contains(&name.as_str()) {
            return Err(SettingError::new(
                Field::AnsweredBy,
                format!(
                    "`{name}` is not a side of this study; name one of: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    if let Some(policy) = s.handover {
        let refuse = |m: String| Err(SettingError::new(Field::Handover, m));
        if !s.compare.is_empty() {
            return refuse("a handover runs on a pair: leave the compared sides out".into());
        }
        if s.answered_by.is_some() {
            return refuse(
                "a handover's answers are written by both sides: leave answered_by out".into(),
            );
        }
        if s.response == ResponseSource::Dataset {
            return refuse("a handover decodes its answers: use response = generate".into());
        }
        if policy.needs_full_rows() && (s.aligned.is_remote() || s.base.is_remote()) {
            return refuse(format!(
                "`{}` needs both sides' whole distributions, which a side on vLLM servers does not give (its divergences are bounds); run both sides locally",
                policy.label()
            ));
        }
    }
    let samples = s.sampling.map_or(1, |s| s.samples);
    if samples > 1 && s.response == ResponseSource::Dataset {
        return Err(SettingError::new(
            Field::Sampling("samples"),
            format!(
                "{samples} answers per query are drawn, but the answers come from the data set (response = dataset); use response = generate"
            ),
        ));
    }
    Ok(())
}
