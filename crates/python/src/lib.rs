//! `aligntds._aligntds`: the native half of the Python package. It reads run
//! folders through the same typed definitions as every Rust reader
//! (aligntds-formats; no model code) and hands positions.parquet to Python as
//! an Arrow C stream (the PyCapsule interface, `__arrow_c_stream__`), so
//! pyarrow, polars and pandas take the columns with no file in between. The
//! Python half (python/aligntds) turns these into the public API.

use std::ffi::CString;
use std::path::PathBuf;

use aligntds_formats::summary::Summary;
use aligntds_formats::FormatError;
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

create_exception!(
    _aligntds,
    RunError,
    PyValueError,
    "A run folder or one of its files cannot be read; the message names the file (and the field)."
);

fn run_error(e: FormatError) -> PyErr {
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

/// positions.parquet of a run folder as an Arrow stream; each
/// `__arrow_c_stream__` call reads the file afresh, so a table can be read
/// more than once.
#[pyclass(frozen, module = "aligntds._aligntds")]
struct PositionsStream {
    dir: PathBuf,
}

#[pymethods]
impl PositionsStream {
    #[new]
    fn new(path: PathBuf) -> PyResult<Self> {
        // Fail here, naming the file, rather than in the consumer.
        aligntds_formats::positions::batches(&path).map_err(run_error)?;
        Ok(Self { dir: path })
    }

    /// The Arrow PyCapsule stream interface. A requested schema is ignored
    /// (allowed by the protocol): the columns come as positions.parquet holds them.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = aligntds_formats::positions::batches(&self.dir).map_err(run_error)?;
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        let name = CString::new("arrow_array_stream").expect("no NUL in the name");
        // The consumer moves the stream out (leaving it released); the
        // capsule drops whatever is left, which releases an unread stream.
        PyCapsule::new(py, stream, Some(name))
    }

    fn __repr__(&self) -> String {
        format!("PositionsStream({:?})", self.dir.display().to_string())
    }
}

#[pymodule]
fn _aligntds(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("RunError", m.py().get_type::<RunError>())?;
    m.add_function(wrap_pyfunction!(read_summary, m)?)?;
    m.add_class::<PositionsStream>()?;
    Ok(())
}
