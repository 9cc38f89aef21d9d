"""The native module (Rust, PyO3): run files read through aligntds' typed formats."""

from os import PathLike
from typing import Any, Callable, final

__all__ = ["SETTINGS", "RunError", "SettingError", "StudyFailed", "TableStream", "__version__", "analyze", "read_summary"]

__version__: str
#: The study's own settings, as `aligntds.analyze` takes them.
SETTINGS: list[str]

class RunError(ValueError):
    """A run folder or one of its files cannot be read; the message names the file (and the field)."""

class SettingError(ValueError):
    """A setting of a study is refused; `.field` names the keyword argument."""

    field: str

class StudyFailed(RuntimeError):
    """A study stopped on an error that is not one setting's (a model that fails to load, a server that fails)."""

def analyze(spec: str, progress: Callable[[int, int], None] | None = None) -> str:
    """Runs the study a JSON spec describes (built by `aligntds.analyze`); returns its folder."""

def read_summary(path: str | PathLike[str]) -> str:
    """summary.json of the run folder `path`, checked against this version's definition, as JSON text."""

@final
class TableStream:
    """A table of a run folder (`positions` or `examples`) as an Arrow stream, read afresh on each use."""

    def __new__(cls, path: str | PathLike[str], table: str) -> TableStream: ...
    def __arrow_c_stream__(self, requested_schema: Any | None = None) -> Any:
        """The Arrow PyCapsule stream interface: a capsule named `arrow_array_stream`."""
