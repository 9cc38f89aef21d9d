"""The installed package against runs the command line writes: the same
numbers as summary.json, the same table as positions.parquet (read by
pyarrow, polars and pandas straight from the file), errors that name the file."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pandas
import polars
import pyarrow
import pyarrow.parquet
import pytest

import aligntds

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("ALIGNTDS_BIN", REPO / "target" / "release" / "aligntds"))
LLAMA = REPO / "fixtures" / "llama3"
DATA = REPO / "data" / "demo-instructions.jsonl"


def analyze(out: Path, *extra: str) -> Path:
    """A tiny run of the fixture model under two contexts, by the real CLI, on
    three demo queries given a `category` field (what `--group-by` splits by)."""
    data = out.parent / f"{out.name}.jsonl"
    records = [json.loads(line) for line in DATA.read_text().splitlines()[:3]]
    data.write_text("".join(json.dumps({**r, "category": f"c{i % 2}"}) + "\n" for i, r in enumerate(records)))
    subprocess.run(
        [str(BINARY), "analyze", "--aligned", str(LLAMA), "--base", str(LLAMA),
         "--base-context", "plain", "--data", str(data),
         "--max-new-tokens", "8", "--out", str(out), "--quiet", *extra],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return analyze(tmp_path_factory.mktemp("runs") / "pair")


@pytest.fixture(scope="module")
def sides_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return analyze(tmp_path_factory.mktemp("runs") / "sides", "--compare", f"other={LLAMA}",
                   "--group-by", "category")


def same(a: float, b: float | None) -> bool:
    return (b is None and math.isnan(a)) or a == b


def test_summary_holds_summary_json_figures(pair_run: Path) -> None:
    raw = json.loads((pair_run / "summary.json").read_text())
    s = aligntds.Run.open(pair_run).summary
    agg = raw["aggregates"]
    assert (s.examples, s.positions) == (agg["examples"], agg["positions"]) == (3, s.positions)
    assert s.positions > 0 and s.fingerprint == raw["manifest"]["fingerprint"]
    assert s.counts == aligntds.Counts(**agg["counts"])
    for name in ("unshifted", "marginal", "shifted"):
        assert getattr(s.ratios, name) == agg["ratios"][name]
        assert same(getattr(s.intervals.__dict__[name], "low"), agg["intervals"][name]["low"])
    assert math.isclose(sum(s.ratios.__dict__.values()), 1.0)
    assert s.aligned == s.base == str(LLAMA)
    assert [side.name for side in s.sides] == ["base"] and s.sides[0].ratios == s.ratios
    assert s.stages is None and s.groups is None
    assert [p.first for p in s.splits] == [p["first"] for p in agg["position_splits"]] == [1, 5]  # 8-token answers
    assert s.raw == raw


def test_sides_come_in_study_order(sides_run: Path) -> None:
    raw = json.loads((sides_run / "summary.json").read_text())
    s = aligntds.Run.open(sides_run).summary
    assert [side.name for side in s.sides] == ["base", "other"]
    for side, stored in zip(s.sides, raw["sides"]):
        assert side.ratios == aligntds.Ratios(**stored["aggregates"]["ratios"])
        assert side.positions == stored["aggregates"]["positions"]


def test_splits_groups_and_stages_hold_summary_json_figures(sides_run: Path) -> None:
    raw = json.loads((sides_run / "summary.json").read_text())
    s = aligntds.Run.open(sides_run).summary
    stored = raw["aggregates"]["position_splits"]
    assert [p.first for p in s.splits] == [p["first"] for p in stored] == [1, 5]  # 8-token answers
    for split, p in zip(s.splits, stored):
        assert (split.head.positions, split.rest.positions) == (p["head"]["positions"], p["rest"]["positions"])
        assert same(split.head.shifted.value, p["head"]["shifted"]["value"])
        assert same(split.rest.kl_aligned_base.high, p["rest"]["kl_aligned_base"]["high"])
    assert s.groups is not None and s.groups.field == "category"
    groups = raw["aggregates"]["groups"]["groups"]
    assert [(g.value, g.stats.examples) for g in s.groups.groups] == [(g["value"], g["examples"]) for g in groups]
    assert [g.value for g in s.groups.groups] == ["c0", "c1"]
    assert all(same(g.stats.shifted.low, r["shifted"]["low"]) for g, r in zip(s.groups.groups, groups))
    # The compared side's own splits and groups.
    other = s.sides[1]
    assert other.splits[0].head.positions == raw["sides"][1]["aggregates"]["position_splits"][0]["head"]["positions"]
    assert other.groups is not None and len(other.groups.groups) == 2
    assert s.stages is not None and s.stages.order == tuple(raw["stages"]["order"])
    for bar in raw["stages"]["by_bar"]:
        shares = s.stages.by_bar[bar["max_rank"]]
        assert [(x.stage, x.positions) for x in shares] == [(x["stage"], x["positions"]) for x in bar["stages"]]
        assert sum(x.positions for x in shares) == s.positions
    assert aligntds.Run.open(sides_run).summary.sides[0].splits == s.splits


@pytest.mark.parametrize("run", ["pair_run", "sides_run"])
def test_positions_equal_the_file_in_pyarrow_polars_and_pandas(run: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(run)
    file = folder / "positions.parquet"
    positions = aligntds.Run.open(folder).positions()
    expected = pyarrow.parquet.read_table(file)
    table = pyarrow.table(positions)
    assert table.num_rows > 0 and table.schema.names == expected.schema.names
    assert table.equals(expected)
    # The stream is read afresh each time, by each consumer.
    assert positions.to_arrow().equals(table)
    assert polars.DataFrame(positions).equals(polars.read_parquet(file))
    assert positions.to_polars().equals(polars.read_parquet(file))
    pandas.testing.assert_frame_equal(positions.to_pandas(), pandas.read_parquet(file))


def test_a_folder_that_is_not_a_run_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(aligntds.RunError, match="summary.json"):
        aligntds.Run.open(tmp_path)
    assert issubclass(aligntds.RunError, ValueError)
    with pytest.raises(aligntds.RunError, match="positions.parquet"):
        aligntds.Run(tmp_path, None).positions()  # type: ignore[arg-type]


def test_a_damaged_summary_names_the_field(pair_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(pair_run, broken)
    raw = json.loads((broken / "summary.json").read_text())
    raw["aggregates"]["ratios"]["shifted"] = "many"
    (broken / "summary.json").write_text(json.dumps(raw))
    with pytest.raises(aligntds.RunError, match=r"aggregates\.ratios\.shifted"):
        aligntds.Run.open(broken)


def test_version_matches_the_command_line() -> None:
    out = subprocess.run([str(BINARY), "--version"], check=True, capture_output=True, text=True)
    assert aligntds.__version__ in out.stdout


@pytest.mark.parametrize("run", ["pair_run", "sides_run"])
def test_examples_hold_examples_jsonl(run: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(run)
    lines = [json.loads(line) for line in (folder / "examples.jsonl").read_text().splitlines()]
    df = aligntds.Run.open(folder).examples().to_polars()
    assert df.height == len(lines) == 3
    for name in ("id", "query", "answer", "answer_ids", "stop_reason", "unshifted", "marginal", "shifted"):
        assert df[name].to_list() == [line[name] for line in lines], name
    assert df["skipped"].to_list() == [line.get("skipped") for line in lines]
    assert {k for line in lines for k in line.get("fields", {})} == {"category"}
    for field in ("category",):
        assert df[f"field.{field}"].to_list() == [line.get("fields", {}).get(field) for line in lines]
    sides = [s["name"] for s in lines[0].get("sides", [])]
    assert sides == (["other"] if run == "sides_run" else [])
    for side in sides:
        for count in ("unshifted", "marginal", "shifted"):
            stored = [next(s[count] for s in line["sides"] if s["name"] == side) for line in lines]
            assert df[f"side.{side}.{count}"].to_list() == stored
    # Counts per example add up to the positions table's.
    positions = aligntds.Run.open(folder).positions().to_polars()
    base = positions.filter(polars.col("side") == "base")
    assert int(df["shifted"].sum()) == base.filter(polars.col("category") == "shifted").height
