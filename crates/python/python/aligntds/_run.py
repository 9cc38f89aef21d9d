"""A finished run folder, read with no model code."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aligntds import _aligntds
from aligntds._summary import Summary

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow

    from aligntds._pair import Example


class _Stream(Protocol):
    def __arrow_c_stream__(self, requested_schema: Any | None = None) -> Any: ...


class ArrowData:
    """A table handed over as an Arrow stream (the PyCapsule interface):
    `pa.table(data)`, `pl.DataFrame(data)` and `duckdb` read it directly, with
    no file in between; each read streams the table afresh."""

    def __init__(self, stream: _Stream) -> None:
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

    def example(self, id: str | None = None, *, index: int | None = None) -> Example:
        """One example of the run with its positions (the base side's), by
        `id` or by `index` (0-based, file order); shows its tokens in Jupyter."""
        from aligntds._pair import Example

        if (id is None) == (index is None):
            raise ValueError("give an example's `id` or its `index`")
        return Example(_aligntds.NativeExample.read(self.path, id=id, index=index))

    def report(self, out: str | os.PathLike[str], *others: Run | str | os.PathLike[str]) -> Path:
        """Builds `aligntds report`'s site of this run (and any `others`, side
        by side) in the folder `out`; returns its index.html."""
        runs = [self.path] + [o.path if isinstance(o, Run) else Path(o) for o in others]
        index, _pages, _bytes = _aligntds.build_report(runs, Path(out))
        return Path(index)

    def _repr_html_(self) -> str:
        """The headline figures as a table: each reference side's ratios with
        their intervals (no script)."""
        s = self.summary
        rows = []
        for side in s.sides:
            cells = [html.escape(side.name), html.escape(side.model), str(side.examples)]
            for name in ("unshifted", "marginal", "shifted"):
                value = getattr(side.ratios, name)
                cell = f"{value:.1%}"
                if side.intervals is not None:
                    b = getattr(side.intervals, name)
                    cell += f" <small>[{b.low:.1%}, {b.high:.1%}]</small>"
                cells.append(cell)
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        head = "".join(
            f"<th>{h}</th>"
            for h in ("side", "model", "examples", "unshifted", "marginal", "shifted")
        )
        return (
            f"<div><b>aligntds run</b> {html.escape(str(self.path))}: aligned "
            f"{html.escape(s.aligned)}, {s.examples} examples, {s.positions} positions"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "<small>ratios of answer positions by the side's rank of the aligned token "
            "(1; 2-3; beyond), with 95% bootstrap intervals over examples</small></div>"
        )

    def __repr__(self) -> str:
        r = self.summary.ratios
        return (
            f"Run({str(self.path)!r}: {self.summary.examples} examples, "
            f"{self.summary.positions} positions, unshifted {r.unshifted:.1%} / "
            f"marginal {r.marginal:.1%} / shifted {r.shifted:.1%})"
        )
