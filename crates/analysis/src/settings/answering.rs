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
