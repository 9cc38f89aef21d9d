"""summary.json as typed, read-only objects.

The native module checks the file field by field against the same Rust
definition every aligntds reader uses; these classes name the figures a
study reports. Everything else stays reachable through `Summary.raw`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping


def _number(value: Any) -> float:
    """A statistic; summary.json writes undefined ones (no data) as null."""
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Counts:
    """Positions per category (base rank of the aligned token: 1, 2-3, beyond)."""

    unshifted: int
    marginal: int
    shifted: int

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Counts:
        return cls(int(d["unshifted"]), int(d["marginal"]), int(d["shifted"]))


@dataclass(frozen=True)
class Ratios:
    """Shares of positions per category (fractions, summing to 1)."""

    unshifted: float
    marginal: float
    shifted: float

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Ratios:
        return cls(_number(d["unshifted"]), _number(d["marginal"]), _number(d["shifted"]))


@dataclass(frozen=True)
class Bounds:
    """An interval's ends (NaN where the statistic is undefined)."""

    low: float
    high: float

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Bounds:
        return cls(_number(d["low"]), _number(d["high"]))


@dataclass(frozen=True)
class Intervals:
    """Percentile intervals from a bootstrap over examples (fixed seed)."""

    level: float
    resamples: int
    seed: int
    unshifted: Bounds
    marginal: Bounds
    shifted: Bounds
    kl_aligned_base: Bounds
    kl_base_aligned: Bounds
    same_top1_rate: Bounds
    mean_base_prob: Bounds

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Intervals:
        names = (
            "unshifted",
            "marginal",
            "shifted",
            "kl_aligned_base",
            "kl_base_aligned",
            "same_top1_rate",
            "mean_base_prob",
        )
        bounds = {n: Bounds._from(d[n]) for n in names}
        return cls(float(d["level"]), int(d["resamples"]), int(d["seed"]), **bounds)


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95 % bootstrap interval over examples (NaN where undefined)."""

    value: float
    low: float
    high: float

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Estimate:
        return cls(_number(d["value"]), _number(d["low"]), _number(d["high"]))


@dataclass(frozen=True)
class SplitStats:
    """The headline statistics over a subset of positions: the category
    shares and the mean KL(aligned || base), each with its interval."""

    examples: int
    positions: int
    unshifted: Estimate
    marginal: Estimate
    shifted: Estimate
    kl_aligned_base: Estimate

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> SplitStats:
        return cls(
            examples=int(d["examples"]),
            positions=int(d["positions"]),
            **{k: Estimate._from(d[k]) for k in ("unshifted", "marginal", "shifted", "kl_aligned_base")},
        )


@dataclass(frozen=True)
class PositionSplit:
    """The first `first` answer positions (`head`) against the rest."""

    first: int
    head: SplitStats
    rest: SplitStats

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> PositionSplit:
        return cls(int(d["first"]), SplitStats._from(d["head"]), SplitStats._from(d["rest"]))


@dataclass(frozen=True)
class Group:
    """The statistics of the records whose group field holds `value`
    (`(none)` for records without it)."""

    value: str
    stats: SplitStats


@dataclass(frozen=True)
class Groups:
    """The statistics by the record field `field` (`group_by`), largest group first."""

    field: str
    groups: tuple[Group, ...]

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Groups:
        return cls(
            str(d["field"]),
            tuple(Group(str(g["value"]), SplitStats._from(g)) for g in d["groups"]),
        )


@dataclass(frozen=True)
class StageShare:
    """The share of positions one stage settles first (or `unsettled`)."""

    stage: str
    positions: int
    share: float
    interval: Estimate

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> StageShare:
        return cls(str(d["stage"]), int(d["positions"]), _number(d["share"]), Estimate._from(d["interval"]))


@dataclass(frozen=True)
class Stages:
    """The stage view of a run with compared sides: `order` is the sides in
    stage order (`aligned` last); `by_bar` maps a bar (1: top-1, 3: within
    the marginal bar) to each stage's share of positions it settles first."""

    order: tuple[str, ...]
    by_bar: Mapping[int, tuple[StageShare, ...]]

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Stages:
        return cls(
            tuple(str(o) for o in d["order"]),
            {int(b["max_rank"]): tuple(StageShare._from(x) for x in b["stages"]) for b in d["by_bar"]},
        )


@dataclass(frozen=True)
class Side:
    """One reference side's statistics: the aligned model's tokens ranked by this side."""

    name: str
    model: str
    examples: int
    positions: int
    counts: Counts
    ratios: Ratios
    intervals: Intervals | None
    same_top1_rate: float
    mean_base_prob: float
    #: The first 1, 5, 10 and 20 answer positions against the rest.
    splits: tuple[PositionSplit, ...]
    #: By the record field the run was grouped by (`group_by`); None without one.
    groups: Groups | None

    @classmethod
    def _from(cls, name: str, model: str, a: Mapping[str, Any]) -> Side:
        intervals = a.get("intervals")
        groups = a.get("groups")
        return cls(
            name=name,
            model=model,
            examples=int(a["examples"]),
            positions=int(a["positions"]),
            counts=Counts._from(a["counts"]),
            ratios=Ratios._from(a["ratios"]),
            intervals=None if intervals is None else Intervals._from(intervals),
            same_top1_rate=_number(a["same_top1_rate"]),
            mean_base_prob=_number(a["mean_base_prob"]),
            splits=tuple(PositionSplit._from(p) for p in a.get("position_splits", [])),
            groups=None if groups is None else Groups._from(groups),
        )


@dataclass(frozen=True)
class Summary:
    """A finished run's summary.json: the headline figures of the base side
    (ratios, intervals, the first-positions splits, the groups), every
    reference side (`base` first), the stage view of a run with compared
    sides, and the whole file as `raw`."""

    schema_version: int
    fingerprint: str
    aligned: str
    base: str
    shard: str | None
    examples: int
    positions: int
    counts: Counts
    ratios: Ratios
    intervals: Intervals | None
    splits: tuple[PositionSplit, ...]
    groups: Groups | None
    sides: tuple[Side, ...]
    stages: Stages | None
    #: The side whose answers were analyzed (`aligned` unless `answered_by`).
    answered_by: str
    #: Answers per query (above 1 with `samples`; intervals then resample queries).
    samples: int
    raw: Mapping[str, Any]

    @classmethod
    def _from(cls, raw: Mapping[str, Any]) -> Summary:
        manifest = raw["manifest"]
        base = Side._from("base", manifest["base"]["reference"], raw["aggregates"])
        sides = tuple(
            Side._from(s["name"], s["model"], s["aggregates"]) for s in raw.get("sides", [])
        ) or (base,)
        return cls(
            schema_version=int(raw["schema_version"]),
            fingerprint=str(manifest["fingerprint"]),
            aligned=str(manifest["aligned"]["reference"]),
            base=base.model,
            shard=manifest.get("shard"),
            examples=base.examples,
            positions=base.positions,
            counts=base.counts,
            ratios=base.ratios,
            intervals=base.intervals,
            splits=base.splits,
            groups=base.groups,
            sides=sides,
            stages=None if raw.get("stages") is None else Stages._from(raw["stages"]),
            answered_by=str(manifest["settings"].get("answered_by") or "aligned"),
            samples=int((manifest["settings"].get("sampling") or {}).get("samples", 1)),
            raw=raw,
        )
