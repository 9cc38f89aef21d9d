//! `aligntds._aligntds`: the native half of the Python package. It reads run
//! folders through the same typed definitions as every Rust reader
//! (aligntds-formats; no model code) and hands its tables (positions.parquet, examples.jsonl) to Python as
//! Arrow C streams (the PyCapsule interface, `__arrow_c_stream__`), so
//! pyarrow, polars and pandas take the columns with no file in between. The
//! Python half (python/aligntds) turns these into the public API.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use aligntds_formats::examples_table;
use aligntds_formats::summary::Summary;
use aligntds_formats::FormatError;
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatchIterator, RecordBatchReader};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

mod errors;
mod example;
mod handover;
mod pair;
mod runs;
mod study;

create_exception!(
    _aligntds,
    RunError,
    PyValueError,
    "A run folder or one of its files cannot be read; the message names the file (and the field)."
);

pub(crate) fn run_error(e: FormatError) -> PyErr {
    RunError::new_err(e.to_string())
}

/// summary.json of the run folder `path`, checked field by field against
/// this version's definition, as JSON text (the Python half builds typed
/// objects from it).
#[pyfunction]
fn read_summary(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let summary = py.detach(|| Summary::read(&path)).map_err(run_error)?;
    serde_json::to_string(&summary).map_err(|e| RunError::new_err(e.to_string()))
}

/// Which table of a run folder a stream reads.
#[derive(Clone, Copy)]
enum Table {
    /// positions.parquet, its columns as they are.
    Positions,
    /// examples.jsonl, a column per field (`formats::examples_table`).
    Examples,
}

impl Table {
    fn reader(self, dir: &Path) -> Result<Box<dyn RecordBatchReader + Send>, FormatError> {
        Ok(match self {
            Self::Positions => Box::new(aligntds_formats::positions::batches(dir)?),
            Self::Examples => {
                let batch = examples_table::record_batch(&aligntds_formats::examples::read(dir)?);
                let schema = batch.schema();
                Box::new(RecordBatchIterator::new([Ok(batch)], schema))
            }
        })
    }
}

/// A table of a run folder as an Arrow stream; each `__arrow_c_stream__`
/// call reads the file afresh, so one stream serves several consumers.
#[pyclass(frozen, module = "aligntds._aligntds")]
struct TableStream {
    dir: PathBuf,
    table: Table,
}

#[pymethods]
impl TableStream {
    /// `table`: `positions` or `examples`.
    #[new]
    fn new(py: Python<'_>, path: PathBuf, table: &str) -> PyResult<Self> {
        let table = match table {
            "positions" => Table::Positions,
            "examples" => Table::Examples,
            other => {
                return Err(PyValueError::new_err(format!(
                    "table: `{other}` is not a run table; use `positions` or `examples`"
                )))
            }
        };
        // Fail here, naming the file, rather than in the consumer.
        py.detach(|| table.reader(&path)).map_err(run_error)?;
        Ok(Self { dir: path, table })
    }

    /// The Arrow PyCapsule stream interface. A requested schema is ignored
    /// (allowed by the protocol): the columns come as the run holds them.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = py
            .detach(|| self.table.reader(&self.dir))
            .map_err(run_error)?;
        stream_capsule(py, reader)
    }

    fn __repr__(&self) -> String {
        let table = match self.table {
            Table::Positions => "positions",
            Table::Examples => "examples",
        };
        format!(
            "TableStream({:?}, {table:?})",
            self.dir.display().to_string()
        )
    }
}

/// A reader as the Arrow C stream capsule the PyCapsule interface hands over.
pub(crate) fn stream_capsule<'py>(
    py: Python<'py>,
    reader: Box<dyn RecordBatchReader + Send>,
) -> PyResult<Bound<'py, PyCapsule>> {
    let stream = FFI_ArrowArrayStream::new(reader);
    let name = CString::new("arrow_array_stream").expect("no NUL in the name");
    // The consumer moves the stream out (leaving it released); the
    // capsule drops whatever is left, which releases an unread stream.
    PyCapsule::new(py, stream, Some(name))
}

#[pymodule]
fn _aligntds(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RunError", m.py().get_type::<RunError>())?;
    m.add_function(wrap_pyfunction!(read_summary, m)?)?;
    m.add_class::<TableStream>()?;
    m.add_class::<example::NativeExample>()?;
    study::register(m)?;
    handover::register(m)?;
    pair::register(m)?;
    runs::register(m)?;
    Ok(())
}
