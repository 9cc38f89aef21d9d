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

    @classmethod
    def _from(cls, name: str, model: str, a: Mapping[str, Any]) -> Side:
        intervals = a.get("intervals")
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
        )


@dataclass(frozen=True)
class Summary:
    """A finished run's summary.json: the headline figures of the base side,
    every reference side (`base` first), and the whole file as `raw`."""

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
    sides: tuple[Side, ...]
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
            sides=sides,
            raw=raw,
        )
