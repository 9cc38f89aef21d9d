"""Finished runs together: two compared (`aligntds compare`) and shards
merged (`aligntds merge`), by the same library calls as the command line."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

from aligntds import _aligntds
from aligntds._run import Run


@dataclass(frozen=True)
class ComparisonRow:
    """One statistic in two runs: its values, `a - b` with a paired-bootstrap
    interval, and a paired permutation test's p-value."""

    statistic: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float
    permutations: int


@dataclass(frozen=True)
class Comparison:
    """Two runs (`RUN` or `RUN@SIDE`) compared on the examples they share."""

    a: str
    b: str
    examples: int
    only_a: int
    only_b: int
    rows: tuple[ComparisonRow, ...]
    text: str
    raw: Mapping[str, Any]

    def row(self, statistic: str) -> ComparisonRow:
        """The row of `statistic` (`unshifted`, `shifted`, `kl_aligned_base`, ...)."""
        for r in self.rows:
            if r.statistic == statistic:
                return r
        raise KeyError(f"{statistic}: the statistics are {', '.join(r.statistic for r in self.rows)}")

    def __str__(self) -> str:
        return self.text


def _operand(run: Run | str | os.PathLike[str]) -> str:
    return str(run.path) if isinstance(run, Run) else os.fspath(run)


def compare(
    a: Run | str | os.PathLike[str], b: Run | str | os.PathLike[str], *, common: bool = False
) -> Comparison:
    """Compares run `a` with run `b` (each a Run, a folder, or `FOLDER@SIDE`
    for one side of a run with compared sides). Runs of different queries are
    refused unless `common=True` (then the shared examples are compared)."""
    raw_text, text = _aligntds.compare_runs(_operand(a), _operand(b), common)
    raw = json.loads(raw_text)
    rows = tuple(
        ComparisonRow(
            statistic=str(r["statistic"]),
            a=float(r["a"]),
            b=float(r["b"]),
            difference=float(r["difference"]["estimate"]),
            low=float(r["difference"]["low"]),
            high=float(r["difference"]["high"]),
            p_value=float(r["p_value"]),
            permutations=int(r["permutations"]),
        )
        for r in raw["rows"]
    )
    return Comparison(
        a=str(raw["a"]),
        b=str(raw["b"]),
        examples=int(raw["examples"]),
        only_a=int(raw["only_a"]),
        only_b=int(raw["only_b"]),
        rows=rows,
        text=text,
        raw=raw,
    )


def merge(
    shards: list[Run | str | os.PathLike[str]], out: str | os.PathLike[str]
) -> Run:
    """Merges the shard runs of one study (`shard="1/4"`, ...) into `out`, as
    `aligntds merge` does, and opens it."""
    folder = _aligntds.merge_runs([_operand(s) for s in shards], os.fspath(out))
    return Run.open(folder)
