//! One analyzed answer held in memory: a live pair's outcome, or one
//! example read back from a run folder. Its positions go to Python as an
//! Arrow stream in positions.parquet's layout (plus `chosen_by` where a live
//! pair chose the tokens), its record as examples.jsonl's JSON, and its
//! tokens as the report's coloured spans (`_repr_html_`).

use std::path::PathBuf;
use std::sync::Arc;

use aligntds_formats::examples::ExampleLine;
use aligntds_formats::positions::{self, PositionRecord};
use aligntds_formats::summary::{Summary, Thresholds};
use aligntds_formats::FormatError;
use arrow_array::{ArrayRef, RecordBatch, RecordBatchIterator, StringArray};
use arrow_schema::{Field, Schema};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::{run_error, RunError};

/// The column a live example adds to positions.parquet's: who chose each token.
pub const CHOSEN_BY: &str = "chosen_by";

#[pyclass(frozen, module = "aligntds._aligntds")]
pub struct NativeExample {
    example: ExampleLine,
    positions: Vec<PositionRecord>,
    /// One per position where a live pair chose the tokens.
    chosen_by: Option<Vec<String>>,
    thresholds: Thresholds,
}

impl NativeExample {
    pub fn new(
        example: ExampleLine,
        positions: Vec<PositionRecord>,
        chosen_by: Option<Vec<String>>,
        thresholds: Thresholds,
    ) -> Self {
        Self {
            example,
            positions,
            chosen_by,
            thresholds,
        }
    }

    fn batch(&self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let rows: Vec<(&str, &str, &PositionRecord)> = self
            .positions
            .iter()
            .map(|p| {
                (
                    self.example.id.as_str(),
                    aligntds_formats::sides::BASE_SIDE,
                    p,
                )
            })
            .collect();
        let batch = positions::record_batch(&rows)?;
        let Some(chosen) = &self.chosen_by else {
            return Ok(batch);
        };
        let schema = batch.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(CHOSEN_BY, arrow_schema::DataType::Utf8, false));
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(StringArray::from_iter_values(chosen)));
        let schema = Schema::new(fields).with_metadata(schema.metadata().clone());
        RecordBatch::try_new(Arc::new(schema), columns)
    }
}

/// Example `id` of the run folder `dir` (or its `index`-th, 0-based), with
/// its base side's positions.
fn read_one(dir: &std::path::Path, pick: Pick) -> Result<NativeExample, FormatError> {
    let summary = Summary::read(dir)?;
    let examples = aligntds_formats::examples::read(dir)?;
    let position = match &pick {
        Pick::Id(id) => examples.iter().position(|e| &e.id == id),
        Pick::Index(i) => (*i < examples.len()).then_some(*i),
    };
    let Some(position) = position else {
        return Err(FormatError::File {
            path: dir.join(aligntds_formats::EXAMPLES_FILE),
            message: match pick {
                Pick::Id(id) => format!("holds no example with id {id:?}"),
                Pick::Index(i) => format!("holds {} examples, not {}", examples.len(), i + 1),
            },
        });
    };
    let example = examples.into_iter().nth(position).unwrap_or_default();
    let mut rows = Vec::new();
    positions::for_each_example(dir, |id, found| {
        if id == example.id {
            rows = found;
        }
        Ok(())
    })?;
    Ok(NativeExample::new(
        example,
        rows,
        None,
        summary.manifest.identity.settings.thresholds,
    ))
}

enum Pick {
    Id(String),
    Index(usize),
}

#[pymethods]
impl NativeExample {
    /// One example of the run folder `path`: by `id`, or by `index` (0-based).
    #[staticmethod]
    #[pyo3(signature = (path, id=None, index=None))]
    fn read(
        py: Python<'_>,
        path: PathBuf,
        id: Option<String>,
        index: Option<usize>,
    ) -> PyResult<Self> {
        let pick = match (id, index) {
            (Some(id), None) => Pick::Id(id),
            (None, Some(i)) => Pick::Index(i),
            _ => {
                return Err(PyValueError::new_err(
                    "give an example's `id` or its `index`",
                ))
            }
        };
        py.detach(|| read_one(&path, pick)).map_err(run_error)
    }

    /// The example as examples.jsonl holds it (JSON text).
    fn record_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.example).map_err(|e| RunError::new_err(e.to_string()))
    }

    /// Who chose each position (`aligned`, `base`, `prefix`, `replace`);
    /// None for an example read from a run.
    #[getter]
    fn chosen_by(&self) -> Option<Vec<String>> {
        self.chosen_by.clone()
    }

    /// The answer's tokens coloured by category, with titles (no script).
    fn html(&self) -> String {
        let chosen: Option<Vec<&str>> = self
            .chosen_by
            .as_ref()
            .map(|c| c.iter().map(String::as_str).collect());
        aligntds_report::inline::example_html(
            &self.example,
            &self.positions,
            chosen.as_deref(),
            self.thresholds,
        )
    }

    /// The positions as an Arrow stream (the PyCapsule interface).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let batch = self
            .batch()
            .map_err(|e| RunError::new_err(format!("positions: {e}")))?;
        let schema = batch.schema();
        crate::stream_capsule(py, Box::new(RecordBatchIterator::new([Ok(batch)], schema)))
    }
}
