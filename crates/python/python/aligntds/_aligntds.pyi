"""The native module (Rust, PyO3): run files read through aligntds' typed formats."""

from os import PathLike
from typing import Any, final

__all__ = ["RunError", "TableStream", "__version__", "read_summary"]

__version__: str

class RunError(ValueError):
    """A run folder or one of its files cannot be read; the message names the file (and the field)."""

def read_summary(path: str | PathLike[str]) -> str:
    """summary.json of the run folder `path`, checked against this version's definition, as JSON text."""

@final
class TableStream:
    """A table of a run folder (`positions` or `examples`) as an Arrow stream, read afresh on each use."""

    def __new__(cls, path: str | PathLike[str], table: str) -> TableStream: ...
    def __arrow_c_stream__(self, requested_schema: Any | None = None) -> Any:
        """The Arrow PyCapsule stream interface: a capsule named `arrow_array_stream`."""
