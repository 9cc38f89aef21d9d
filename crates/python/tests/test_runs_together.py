"""Finished runs from Python against the command line on the same folders:
`Run.report` builds the site `aligntds report` builds, `aligntds.compare`
gives `aligntds compare --json`'s figures, `aligntds.merge` of shards run from
Python gives the unsharded run; a run renders as a table in Jupyter."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pyarrow.parquet
import pytest

import aligntds

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("ALIGNTDS_BIN", REPO / "target" / "release" / "aligntds"))
LLAMA = str(REPO / "fixtures" / "llama3")
DATA = REPO / "data" / "demo-instructions.jsonl"


def cli(*args: str) -> str:
    return subprocess.run([str(BINARY), *args], check=True, capture_output=True, text=True).stdout


def run(out: Path, context: str, limit: int = 4) -> Path:
    cli("analyze", "--aligned", LLAMA, "--base", LLAMA, "--base-context", context,
        "--data", str(DATA), "--limit", str(limit), "--max-new-tokens", "6", "--out", str(out),
        "--quiet")
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return run(root / "plain", "plain"), run(root / "template", "template")


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_report_builds_the_command_lines_site(runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = runs
    cli("report", str(a), str(b), "--out", str(tmp_path / "cli"))
    index = aligntds.Run.open(a).report(tmp_path / "py", b)
    assert index == tmp_path / "py" / "index.html" and index.is_file()
    assert files(tmp_path / "py") == files(tmp_path / "cli")
    with pytest.raises(aligntds.RunError, match="summary.json"):
        aligntds.Run.open(a).report(tmp_path / "bad", tmp_path)


def test_compare_gives_the_command_lines_figures(runs: tuple[Path, Path]) -> None:
    a, b = runs
    expected = json.loads(cli("compare", str(a), str(b), "--json"))
    got = aligntds.compare(aligntds.Run.open(a), b)
    assert got.raw == expected
    shifted = got.row("shifted")
    row = next(r for r in expected["rows"] if r["statistic"] == "shifted")
    assert (shifted.a, shifted.b, shifted.p_value) == (row["a"], row["b"], row["p_value"])
    assert shifted.low <= shifted.difference <= shifted.high
    assert str(got) == cli("compare", str(a), str(b))
    with pytest.raises(KeyError, match="unshifted"):
        got.row("nonsense")


def test_compare_refuses_different_queries_unless_common(runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = runs
    fewer = run(tmp_path / "fewer", "plain", limit=2)
    with pytest.raises(aligntds.SettingError) as refused:
        aligntds.compare(a, fewer)
    assert refused.value.field == "common"
    assert aligntds.compare(a, fewer, common=True).examples == 2


def test_merged_shards_equal_the_unsharded_run(runs: tuple[Path, Path], tmp_path: Path) -> None:
    whole, _ = runs
    shards = [
        aligntds.analyze(aligned=LLAMA, base=LLAMA, base_context="plain", data=DATA, limit=4,
                         max_new_tokens=6, out=tmp_path / f"shard{i}", shard=f"{i}/2", progress=False)
        for i in (0, 1)
    ]
    merged = aligntds.merge(shards, tmp_path / "merged")
    assert pyarrow.parquet.read_table(merged.path / "positions.parquet").equals(
        pyarrow.parquet.read_table(whole / "positions.parquet"))
    assert merged.summary.ratios == aligntds.Run.open(whole).summary.ratios
    with pytest.raises(aligntds.SettingError):
        aligntds.merge(shards[:1] + [whole], tmp_path / "mixed")


def test_a_run_renders_its_ratios_as_a_table(runs: tuple[Path, Path]) -> None:
    r = aligntds.Run.open(runs[0])
    html = r._repr_html_()
    assert "<script" not in html and html.count("<tr>") == 2
    assert f"{r.summary.ratios.shifted:.1%}" in html
    assert r.summary.intervals is not None
    assert f"[{r.summary.intervals.shifted.low:.1%}, {r.summary.intervals.shifted.high:.1%}]" in html
