"""A finished run folder, read with no model code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aligntds import _aligntds
from aligntds._summary import Summary

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow


class ArrowData:
    """A table handed over as an Arrow stream (the PyCapsule interface):
    `pa.table(data)`, `pl.DataFrame(data)` and `duckdb` read it directly, with
    no file in between; each read streams the table afresh."""

    def __init__(self, stream: _aligntds.TableStream) -> None:
        self._stream = stream

    def __arrow_c_stream__(self, requested_schema: Any | None = None) -> Any:
        """The Arrow PyCapsule stream interface."""
        return self._stream.__arrow_c_stream__(requested_schema)

    def to_arrow(self) -> pyarrow.Table:
        """The table as a pyarrow Table (needs pyarrow 14 or newer)."""
        import pyarrow

        return pyarrow.table(self)

    def to_pandas(self) -> pandas.DataFrame:
        """The table as a pandas DataFrame (through pyarrow)."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> polars.DataFrame:
        """The table as a polars DataFrame."""
        import polars

        return polars.DataFrame(self)

    def __repr__(self) -> str:
        return f"ArrowData({self._stream!r})"


class Run:
    """A finished `aligntds analyze` run folder: its summary and its tables."""

    def __init__(self, path: Path, summary: Summary) -> None:
        self.path = path
        self.summary = summary

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        """Reads the run folder `path` (summary.json checked against this
        version's definition); raises `RunError` naming the file and field."""
        folder = Path(path)
        raw = json.loads(_aligntds.read_summary(folder))
        return cls(folder, Summary._from(raw))

    def positions(self) -> ArrowData:
        """positions.parquet: one row per (example, answer position, reference
        side), its columns as docs/analysis.md defines them."""
        return ArrowData(_aligntds.TableStream(self.path, "positions"))

    def examples(self) -> ArrowData:
        """examples.jsonl: one row per record (analyzed or skipped), a column
        per field, then `field.NAME` per record field and
        `side.NAME.unshifted|marginal|shifted|scoring_seconds` per compared side."""
        return ArrowData(_aligntds.TableStream(self.path, "examples"))

    def __repr__(self) -> str:
        r = self.summary.ratios
        return (
            f"Run({str(self.path)!r}: {self.summary.examples} examples, "
            f"{self.summary.positions} positions, unshifted {r.unshifted:.1%} / "
            f"marginal {r.marginal:.1%} / shifted {r.shifted:.1%})"
        )
