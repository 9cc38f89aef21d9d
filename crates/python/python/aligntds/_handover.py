"""`aligntds.handover(...)`: handover decoding from Python, run by the same
library as `aligntds handover`, and its folder read back: one ordinary run
per arm and the intervention-budget curve (handover.json)."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from aligntds import _aligntds
from aligntds._analyze import study_spec
from aligntds._run import Run
from aligntds._settings import Progress, Side, error, reporter
from aligntds._summary import Estimate, _number


@dataclass(frozen=True)
class ArmExample:
    """One example's figures in one arm (docs/handover.md)."""

    id: str
    aligned_share: float
    handovers: int
    agreement: float
    first_difference: int | None
    aligned_mean_logprob: float
    base_mean_logprob: float
    length: int
    stop_reason: str

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> ArmExample:
        return cls(
            id=d["id"],
            aligned_share=_number(d["aligned_share"]),
            handovers=int(d["handovers"]),
            agreement=_number(d["agreement"]),
            first_difference=d["first_difference"],
            aligned_mean_logprob=_number(d["aligned_mean_logprob"]),
            base_mean_logprob=_number(d["base_mean_logprob"]),
            length=int(d["length"]),
            stop_reason=d["stop_reason"],
        )


#: The per-arm means of handover.json, each an `Estimate` over queries.
ESTIMATES = (
    "aligned_share",
    "handovers",
    "agreement",
    "aligned_mean_logprob",
    "base_mean_logprob",
    "length",
)


@dataclass(frozen=True)
class Arm:
    """One arm of the curve: its policy, its run folder (under `arms/`) and
    the means of its examples' figures with 95 % intervals over queries."""

    policy: str
    folder: str
    examples: int
    aligned_share: Estimate
    handovers: Estimate
    agreement: Estimate
    aligned_mean_logprob: Estimate
    base_mean_logprob: Estimate
    length: Estimate
    per_example: tuple[ArmExample, ...]

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> Arm:
        means = {name: Estimate._from(d[name]) for name in ESTIMATES}
        return cls(
            policy=d["policy"],
            folder=d["folder"],
            examples=int(d["examples"]),
            per_example=tuple(ArmExample._from(e) for e in d["per_example"]),
            **means,
        )


class Handover:
    """A finished `aligntds handover` folder: the curve (`arms`, in the
    order they ran, `aligned` first) and each arm's run."""

    def __init__(self, path: Path, arms: tuple[Arm, ...], raw: Mapping[str, Any]) -> None:
        self.path = path
        self.arms = arms
        self.raw = raw

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Handover:
        """Reads handover.json in `path` (checked against this version's
        definition); raises `RunError` naming the file and field."""
        folder = Path(path)
        raw = json.loads(_aligntds.read_handover(folder))
        return cls(folder, tuple(Arm._from(a) for a in raw["arms"]), raw)

    @classmethod
    def merge(
        cls, shards: Sequence[Handover | str | os.PathLike[str]], out: str | os.PathLike[str]
    ) -> Handover:
        """Merges the shards of one handover study (`shard="i/n"`) into
        `out`, as `aligntds merge` does: each arm's shards, then the curve
        over all the queries."""
        paths = [s.path if isinstance(s, Handover) else Path(s) for s in shards]
        _aligntds.merge_handover(paths, Path(out))
        return cls.open(out)

    def arm(self, policy: str) -> Run:
        """The run of the arm `policy` (as written: `first:5`)."""
        for a in self.arms:
            if a.policy == policy:
                return Run.open(self.path / "arms" / a.folder)
        raise KeyError(f"no arm `{policy}`; the arms are {', '.join(a.policy for a in self.arms)}")

    def runs(self) -> dict[str, Run]:
        """Every arm's run, by policy, in the curve's order."""
        return {a.policy: Run.open(self.path / "arms" / a.folder) for a in self.arms}

    def curve(self) -> list[dict[str, Any]]:
        """One row per arm: the policy, the number of examples, and per
        figure its mean with `_low` and `_high` (ready for a DataFrame)."""
        rows = []
        for a in self.arms:
            row: dict[str, Any] = {"policy": a.policy, "examples": a.examples}
            for name in ESTIMATES:
                e: Estimate = getattr(a, name)
                row.update({name: e.value, f"{name}_low": e.low, f"{name}_high": e.high})
            rows.append(row)
        return rows

    def per_example(self) -> list[dict[str, Any]]:
        """One row per (arm, example): the policy and the example's figures."""
        return [
            {"policy": a.policy, **e.__dict__} for a in self.arms for e in a.per_example
        ]

    def report(self, out: str | os.PathLike[str]) -> Path:
        """Builds `aligntds report`'s site of this folder (the arms and the
        curve) in `out`; returns its index.html."""
        index, _pages, _bytes = _aligntds.build_report([self.path], Path(out))
        return Path(index)

    def _repr_html_(self) -> str:
        """The curve as a table (no script)."""
        head = "".join(
            f"<th>{h}</th>"
            for h in ("arm", "examples", "aligned tokens", "agreement", "aligned mean log-prob")
        )
        rows = "".join(
            f"<tr><td>{html.escape(a.policy)}</td><td>{a.examples}</td>"
            f"<td>{a.aligned_share.value:.1%}</td><td>{a.agreement.value:.3f}</td>"
            f"<td>{a.aligned_mean_logprob.value:.2f}</td></tr>"
            for a in self.arms
        )
        return (
            f"<div><b>aligntds handover</b> {html.escape(str(self.path))}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            "<small>means over the arm's answers; intervals in .curve()</small></div>"
        )

    def __repr__(self) -> str:
        arms = ", ".join(
            f"{a.policy} {a.aligned_share.value:.1%} aligned / agreement {a.agreement.value:.2f}"
            for a in self.arms
        )
        return f"Handover({str(self.path)!r}: {arms})"


def handover(
    *,
    policy: str | Sequence[str],
    aligned: Side | None = None,
    base: Side | None = None,
    data: Any = None,
    query: str | None = None,
    out: str | os.PathLike[str] | None = None,
    study: str | os.PathLike[str] | None = None,
    aligned_context: str | None = None,
    base_context: str | None = None,
    group_by: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
    shard: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: Progress = True,
    **settings: Any,
) -> Handover:
    """Runs a handover study (`aligntds handover`) and returns its folder,
    opened: one arm per policy (`"first:5"`, or a list; `"uncertain:0.1,0.4"`
    makes one arm per value; the `aligned` arm always runs, first), each an
    ordinary run under `out/arms/`, and the curve. The other arguments are
    `analyze`'s (no compared sides). `progress` counts records over all arms.
    The interrupt key stops the run and the same call resumes it.
    """
    policies = [policy] if isinstance(policy, str) else list(policy)
    if not policies or not all(isinstance(p, str) for p in policies):
        raise error("policy", "give one or more policies, e.g. policy=['base', 'first:5']")
    spec = study_spec(
        aligned=aligned,
        base=base,
        data=data,
        query=query,
        out=out,
        compare=None,
        study=study,
        aligned_context=aligned_context,
        base_context=base_context,
        group_by=group_by,
        overwrite=overwrite,
        strict=strict,
        shard=shard,
        device=device,
        threads=threads,
        settings=settings,
    )
    report, close = reporter(progress)
    try:
        folder = _aligntds.handover(json.dumps(spec), policies, report)
    finally:
        close()
    return Handover.open(folder if out is None else out)
