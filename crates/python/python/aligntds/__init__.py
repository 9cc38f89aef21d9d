"""aligntds from Python: read token-distribution-shift runs as Arrow, pandas
and polars data.

    import aligntds, polars as pl
    run = aligntds.analyze(aligned="chat-model", base="base-model",
                           data="queries.jsonl", out="runs/demo", max_new_tokens=256)
    run = aligntds.Run.open("runs/demo")   # later, with no model code
    run.summary.ratios.shifted
    pl.DataFrame(run.positions())
    run.example(index=0)                    # tokens coloured inline in Jupyter

    h = aligntds.handover(aligned="chat-model", base="base-model", data="queries.jsonl",
                          out="runs/handover", policy=["base", "first:5", "uncertain:0.4"])
    h.curve()                               # one row per arm: aligned share, agreement, ...

    pair = aligntds.Pair(aligned="chat-model", base="base-model")
    pair.analyze("Name three colours of the sea.")

The native module (Rust) reads every file through the same typed definitions
as the `aligntds` command line. See docs/python.md.
"""

from aligntds._aligntds import RunError, SettingError, StudyFailed, __version__
from aligntds._analyze import analyze
from aligntds._compare import Comparison, ComparisonRow, compare, merge
from aligntds._handover import Arm, ArmExample, Handover, handover
from aligntds._pair import PAIR_SETTINGS, Example, Pair
from aligntds._run import ArrowData, Run
from aligntds._summary import (
    Bounds,
    Counts,
    Estimate,
    Group,
    Groups,
    Intervals,
    PositionSplit,
    Ratios,
    Side,
    SplitStats,
    StageShare,
    Stages,
    Summary,
)

__all__ = [
    "Arm",
    "ArmExample",
    "ArrowData",
    "Bounds",
    "Comparison",
    "ComparisonRow",
    "Counts",
    "Estimate",
    "Example",
    "Group",
    "Groups",
    "Handover",
    "Intervals",
    "PAIR_SETTINGS",
    "Pair",
    "PositionSplit",
    "Ratios",
    "Run",
    "RunError",
    "SettingError",
    "Side",
    "SplitStats",
    "StageShare",
    "Stages",
    "StudyFailed",
    "Summary",
    "__version__",
    "analyze",
    "compare",
    "handover",
    "merge",
]
