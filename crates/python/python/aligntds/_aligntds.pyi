"""The native module (Rust, PyO3): run files read through aligntds' typed formats."""

from os import PathLike
from typing import Any, Callable, Sequence, final

__all__ = [
    "SETTINGS",
    "NativeExample",
    "NativePair",
    "RunError",
    "SettingError",
    "StudyFailed",
    "TableStream",
    "__version__",
    "analyze",
    "build_report",
    "cli_main",
    "compare_runs",
    "handover",
    "merge_handover",
    "merge_runs",
    "read_handover",
    "read_summary",
    "set_threads",
]

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

def handover(
    spec: str, policies: list[str], progress: Callable[[int, int], None] | None = None
) -> str:
    """Runs every arm of `policies` over the study a JSON spec describes; returns its folder."""

def read_handover(path: str | PathLike[str]) -> str:
    """handover.json of the folder `path`, checked against this version's definition, as JSON text."""

def merge_handover(
    shards: Sequence[str | PathLike[str]], out: str | PathLike[str], curve_positions: int = 200
) -> str:
    """Merges a handover study's shards into `out`; returns `out`."""

def read_summary(path: str | PathLike[str]) -> str:
    """summary.json of the run folder `path`, checked against this version's definition, as JSON text."""

@final
class TableStream:
    """A table of a run folder (`positions` or `examples`) as an Arrow stream, read afresh on each use."""

    def __new__(cls, path: str | PathLike[str], table: str) -> TableStream: ...
    def __arrow_c_stream__(self, requested_schema: Any | None = None) -> Any:
        """The Arrow PyCapsule stream interface: a capsule named `arrow_array_stream`."""

def cli_main(argv: list[str]) -> int:
    """Runs the `aligntds` command line with `argv` (the program name first); returns its exit code."""

def set_threads(threads: int) -> None:
    """Sizes the engine's thread pool; once per process, before the first model runs."""

def build_report(runs: Sequence[str | PathLike[str]], out: str | PathLike[str]) -> tuple[str, int, int]:
    """Builds the report site of `runs` in `out`; returns (index.html, example pages, bytes)."""

def compare_runs(a: str, b: str, common: bool = False) -> tuple[str, str]:
    """Two runs compared: (the comparison as JSON text, as `aligntds compare` prints it)."""

def merge_runs(shards: list[str], out: str, curve_positions: int = 200) -> str:
    """Merges shard runs into `out`; returns `out`."""

@final
class NativeExample:
    """One analyzed answer: its record, its positions as an Arrow stream, its tokens as HTML."""

    @staticmethod
    def read(path: str | PathLike[str], id: str | None = None, index: int | None = None) -> NativeExample:
        """One example of a run folder, by `id` or by `index` (0-based)."""
    def record_json(self) -> str:
        """The example as examples.jsonl holds it (JSON text)."""
    @property
    def chosen_by(self) -> list[str] | None:
        """Who chose each position; None for an example read from a run."""
    def html(self) -> str:
        """The answer's tokens coloured by category, with titles (no script)."""
    def __arrow_c_stream__(self, requested_schema: Any | None = None) -> Any:
        """The positions as an Arrow stream (the PyCapsule interface)."""

@final
class NativePair:
    """Two loaded models answering one request at a time."""

    def __new__(cls, spec: str) -> NativePair: ...
    def run(
        self, request: str, answer: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> NativeExample:
        """Runs one request (serve's fields, as JSON): generated, or `answer` given and scored."""
    @property
    def models(self) -> tuple[str, str]:
        """The aligned and the base model, as given."""
