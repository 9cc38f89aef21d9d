//! Errors as Python exceptions: a refused setting as `SettingError` whose
//! `.field` is the keyword argument to change (mapped from the library's
//! remedies), anything else as `StudyFailed`.

use aligntds_analysis::settings::{DeviceChoice, Field};
use aligntds_analysis::StudyError;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    _aligntds,
    SettingError,
    PyValueError,
    "A setting of a study is refused; `.field` names the keyword argument."
);

create_exception!(
    _aligntds,
    StudyFailed,
    PyRuntimeError,
    "A study stopped on an error that is not one setting's (a model that fails to load, a server that fails)."
);

/// The keyword argument that sets `field`.
fn keyword(field: Field) -> String {
    use aligntds_analysis::settings::SideName;
    let side = |s: SideName| match s {
        SideName::Compare(_) => "compare".to_string(),
        s => s.as_str().to_string(),
    };
    match field {
        Field::Model(s) | Field::Server(s) | Field::ServedName(s) => side(s),
        Field::ChatTemplate(s) | Field::Context(s) | Field::Prefix(s) | Field::Template(s) => {
            match s {
                SideName::Compare(_) => "compare".into(),
                s => format!("{}_context", s.as_str()),
            }
        }
        Field::SideLabel(_) => "compare".into(),
        Field::Thresholds => "unshifted_max".into(),
        Field::QueryField => "query_field".into(),
        Field::AnswerField => "answer_field".into(),
        Field::IdField => "id_field".into(),
        Field::MaxInFlight => "servers".into(),
        Field::Handover => "policy".into(),
        Field::MergeInputs => "shards".into(),
        other => other.name(),
    }
}

pub(crate) fn setting_error(py: Python<'_>, field: String, message: String) -> PyErr {
    let err = SettingError::new_err(format!("{field}: {message}"));
    // `.field`: the keyword argument to change.
    let _ = err.value(py).setattr("field", field);
    err
}

/// A study error as a Python exception: what the user can change, as the
/// keyword argument that changes it (the library's remedy), else `StudyFailed`.
pub(crate) fn study_error(py: Python<'_>, e: StudyError) -> PyErr {
    use aligntds_analysis::study::Remedy;
    let text = e.to_string();
    match (e.remedy(), &e) {
        (Some(Remedy::Setting { field, message }), _) => setting_error(py, keyword(field), message),
        (Some(Remedy::Overwrite), _) => setting_error(
            py,
            "overwrite".into(),
            format!("{text}; pass overwrite=True or another `out`"),
        ),
        (Some(Remedy::ChatTemplate { side: Some(side) }), _) => {
            setting_error(py, keyword(Field::ChatTemplate(side)), text)
        }
        (Some(Remedy::GenerateAnswers), _) => setting_error(
            py,
            "response".into(),
            format!("{text}; pass response=\"generate\" to have the aligned side answer"),
        ),
        // The model reference itself (a missing file, an unreadable folder).
        (None, StudyError::Load { side, .. }) => {
            setting_error(py, keyword(Field::Model(*side)), text)
        }
        _ => StudyFailed::new_err(text),
    }
}

pub(crate) fn device(py: Python<'_>, device: Option<&str>) -> PyResult<DeviceChoice> {
    device
        .map(DeviceChoice::parse)
        .transpose()
        .map_err(|m| setting_error(py, "device".into(), m))
        .map(|d| d.unwrap_or(DeviceChoice::Cpu))
}
