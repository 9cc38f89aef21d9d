"""`aligntds.handover` against `aligntds handover` on the same study: the
same curve and arms; the curve read back as the file holds it; refused
policies named; an interrupt that resumes; shards that merge."""

from __future__ import annotations

import _thread
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pandas
import pyarrow.parquet
import pytest

import aligntds

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("ALIGNTDS_BIN", REPO / "target" / "release" / "aligntds"))
LLAMA = str(REPO / "fixtures" / "llama3")
DEMO = REPO / "data" / "demo-instructions.jsonl"
RECORDS = [json.loads(line) for line in DEMO.read_text().splitlines()[:4]]
STUDY: dict[str, Any] = dict(
    aligned=LLAMA, base=LLAMA, aligned_context="plain", base_context="template",
    max_new_tokens=8, response="generate", progress=False,
)
POLICIES = ["base", "first:2", "uncertain:0.1,0.5"]


@pytest.fixture(scope="module")
def cli_handover(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "handover"
    data = folder.parent / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    args = [str(BINARY), "handover", "--aligned", LLAMA, "--base", LLAMA,
            "--aligned-context", "plain", "--base-context", "template", "--max-new-tokens", "8",
            "--response", "generate", "--data", str(data), "--out", str(folder), "--quiet"]
    for p in POLICIES:
        args += ["--policy", p]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return folder


def test_handover_gives_the_command_lines_curve_and_arms(cli_handover: Path, tmp_path: Path) -> None:
    h = aligntds.handover(
        data=cli_handover.parent / "data.jsonl", out=tmp_path / "h", policy=POLICIES, **STUDY
    )
    assert isinstance(h, aligntds.Handover) and h.path == tmp_path / "h"
    assert (h.path / "handover.json").read_text() == (cli_handover / "handover.json").read_text()
    assert [a.policy for a in h.arms] == ["aligned", "base", "first:2", "uncertain:0.1", "uncertain:0.5"]
    for arm in h.arms:
        ours = pyarrow.parquet.read_table(h.path / "arms" / arm.folder / "positions.parquet")
        theirs = pyarrow.parquet.read_table(cli_handover / "arms" / arm.folder / "positions.parquet")
        assert ours.equals(theirs), arm.policy
    # The arms are runs, and their positions say who chose each token.
    first = h.arm("first:2").positions().to_pandas()
    assert set(first["chosen_by"]) == {"aligned", "base"}
    assert list(h.runs()) == [a.policy for a in h.arms]
    with pytest.raises(KeyError, match="first:2"):
        h.arm("first:3")


def test_the_curve_reads_back_as_the_file_holds_it(cli_handover: Path) -> None:
    h = aligntds.Handover.open(cli_handover)
    raw = json.loads((cli_handover / "handover.json").read_text())
    curve = pandas.DataFrame(h.curve())
    assert list(curve["policy"]) == [a["policy"] for a in raw["arms"]]
    for row, arm in zip(curve.itertuples(), raw["arms"]):
        for name in ("aligned_share", "agreement", "aligned_mean_logprob", "length"):
            assert getattr(row, name) == arm[name]["value"]
            assert getattr(row, f"{name}_low") == arm[name]["low"]
    aligned = h.arms[0]
    assert aligned.aligned_share.value == 1.0 and aligned.agreement.value == 1.0
    examples = pandas.DataFrame(h.per_example())
    assert len(examples) == sum(len(a["per_example"]) for a in raw["arms"])
    base = examples[examples["policy"] == "base"]
    assert (base["aligned_share"] == 0.0).all()
    first = h.arms[2].per_example
    assert all(e.aligned_share == pytest.approx(2 / e.length) for e in first)
    assert "first:2" in repr(h) and "<table>" in h._repr_html_()


def test_report_writes_the_command_lines_site(cli_handover: Path, tmp_path: Path) -> None:
    index = aligntds.Handover.open(cli_handover).report(tmp_path / "py-site")
    subprocess.run([str(BINARY), "report", str(cli_handover), "--out", str(tmp_path / "cli-site")],
                   check=True, stdout=subprocess.DEVNULL)
    assert index == tmp_path / "py-site" / "index.html"
    for name in ("index.html", "figures/handover-agreement.svg", "r2/e00001.html"):
        assert (tmp_path / "py-site" / name).read_bytes() == (tmp_path / "cli-site" / name).read_bytes()


def test_refused_policies_name_the_argument(tmp_path: Path) -> None:
    for policy in (["nudge:0.4"], [], ["uncertain:"]):
        with pytest.raises(aligntds.SettingError) as e:
            aligntds.handover(data=RECORDS, out=tmp_path / "bad", policy=policy, **STUDY)
        assert e.value.field == "policy", e.value
    with pytest.raises(aligntds.SettingError) as e:
        aligntds.handover(data=RECORDS, out=tmp_path / "bad", policy="base",
                          **{**STUDY, "answered_by": "base"})
    assert e.value.field == "policy", e.value


def test_the_interrupt_key_stops_an_arm_and_the_call_resumes(tmp_path: Path) -> None:
    many = [json.loads(line) for line in DEMO.read_text().splitlines()]
    study = {**STUDY, "data": many, "batch": 1}
    seen: list[tuple[int, int]] = []

    def interrupt_in_the_second_arm(done: int, total: int) -> None:
        seen.append((done, total))
        if done > len(many):
            _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        aligntds.handover(out=tmp_path / "cut", policy="base",
                          **{**study, "progress": interrupt_in_the_second_arm})
    # One bar over both arms: the second arm's records count after the first's.
    assert seen[-1][1] == 2 * len(many)
    assert (tmp_path / "cut" / "arms" / "aligned" / "summary.json").exists()
    assert not (tmp_path / "cut" / "arms" / "base" / "summary.json").exists()
    assert not (tmp_path / "cut" / "handover.json").exists()
    resumed: list[tuple[int, int]] = []
    h = aligntds.handover(out=tmp_path / "cut", policy="base",
                          **{**study, "progress": lambda d, t: resumed.append((d, t))})
    assert resumed[-1] == (2 * len(many), 2 * len(many))
    whole = aligntds.handover(out=tmp_path / "whole", policy="base", **study)
    assert (h.path / "handover.json").read_text() == (whole.path / "handover.json").read_text()


def test_shards_merge_to_the_whole_curve(cli_handover: Path, tmp_path: Path) -> None:
    data = cli_handover.parent / "data.jsonl"
    shards = [
        aligntds.handover(data=data, out=tmp_path / f"s{i}", policy=POLICIES, shard=f"{i}/2", **STUDY)
        for i in range(2)
    ]
    merged = aligntds.Handover.merge(shards, tmp_path / "merged")
    assert (merged.path / "handover.json").read_text() == (cli_handover / "handover.json").read_text()
