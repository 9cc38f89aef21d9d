"""`aligntds.analyze` against the command line on the same study: the same
positions, whatever form the data come in; settings errors that name the
argument; the interrupt key leaving a folder that resumes to the same run."""

from __future__ import annotations

import _thread
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import datasets
import pandas
import polars
import pyarrow
import pyarrow.parquet
import pytest

import aligntds

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("ALIGNTDS_BIN", REPO / "target" / "release" / "aligntds"))
LLAMA = str(REPO / "fixtures" / "llama3")
DEMO = REPO / "data" / "demo-instructions.jsonl"
RECORDS = [json.loads(line) for line in DEMO.read_text().splitlines()[:4]]
STUDY: dict[str, Any] = dict(
    aligned=LLAMA, base=LLAMA, base_context="plain", max_new_tokens=6, progress=False
)


def positions(folder: Path) -> pyarrow.Table:
    return pyarrow.parquet.read_table(folder / "positions.parquet")


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "run"
    data = folder.parent / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    subprocess.run(
        [str(BINARY), "analyze", "--aligned", LLAMA, "--base", LLAMA, "--base-context", "plain",
         "--max-new-tokens", "6", "--data", str(data), "--out", str(folder), "--quiet"],
        check=True,
    )
    return folder


def test_a_path_gives_the_command_lines_run(cli_run: Path, tmp_path: Path) -> None:
    run = aligntds.analyze(data=cli_run.parent / "data.jsonl", out=tmp_path / "run", **STUDY)
    assert isinstance(run, aligntds.Run) and run.path == tmp_path / "run"
    assert positions(run.path).equals(positions(cli_run))
    expected = json.loads((cli_run / "summary.json").read_text())
    assert run.summary.raw["aggregates"]["ratios"] == expected["aggregates"]["ratios"]
    assert run.summary.fingerprint == expected["manifest"]["fingerprint"]


@pytest.mark.parametrize(
    "form",
    ["list", "pandas", "polars", "pyarrow", "dataset", "generator"],
)
def test_every_form_of_data_gives_the_same_positions(form: str, cli_run: Path, tmp_path: Path) -> None:
    data: Any = {
        "list": RECORDS,
        "pandas": pandas.DataFrame(RECORDS),
        "polars": polars.DataFrame(RECORDS),
        "pyarrow": pyarrow.Table.from_pylist(RECORDS),
        "dataset": datasets.Dataset.from_list(RECORDS),
        "generator": (r for r in RECORDS),
    }[form]
    if form == "generator":
        with pytest.raises(aligntds.SettingError) as refused:
            aligntds.analyze(data=data, out=tmp_path / "run", **STUDY)
        assert refused.value.field == "data"
        return
    run = aligntds.analyze(data=data, out=tmp_path / "run", **STUDY)
    assert positions(run.path).equals(positions(cli_run))
    written = [json.loads(line) for line in (run.path / aligntds._analyze.DATA_FILE).read_text().splitlines()]
    assert written == RECORDS


def test_sampled_answers_equal_the_command_lines(cli_run: Path, tmp_path: Path) -> None:
    data = cli_run.parent / "data.jsonl"
    sampled = tmp_path / "cli-sampled"
    subprocess.run(
        [str(BINARY), "analyze", "--aligned", LLAMA, "--base", LLAMA, "--base-context", "plain",
         "--max-new-tokens", "6", "--data", str(data), "--out", str(sampled), "--quiet",
         "--temperature", "0.9", "--seed", "5"],
        check=True,
    )
    run = aligntds.analyze(data=RECORDS, out=tmp_path / "py", temperature=0.9, seed=5, **STUDY)
    assert positions(run.path).equals(positions(sampled))
    assert not positions(run.path).equals(positions(cli_run))
    assert run.summary.raw["manifest"]["settings"]["sampling"]["seed"] == 5


def test_samples_and_the_answering_side_equal_the_command_lines(
    cli_run: Path, tmp_path: Path
) -> None:
    data = cli_run.parent / "data.jsonl"
    cli = tmp_path / "cli-samples"
    subprocess.run(
        [str(BINARY), "analyze", "--aligned", LLAMA, "--base", LLAMA, "--base-context", "plain",
         "--max-new-tokens", "6", "--data", str(data), "--out", str(cli), "--quiet",
         "--samples", "2", "--answered-by", "base", "--temperature", "0.9"],
        check=True,
    )
    run = aligntds.analyze(
        data=RECORDS, out=tmp_path / "py", samples=2, answered_by="base", temperature=0.9, **STUDY
    )
    assert positions(run.path).equals(positions(cli))
    examples = run.examples().to_polars()
    assert examples["sample"].to_list() == [0, 1] * len(RECORDS)
    assert examples["query_id"].to_list() == [q for q in examples["query_id"].unique(maintain_order=True) for _ in (0, 1)]
    settings = run.summary.raw["manifest"]["settings"]
    assert (settings["answered_by"], settings["sampling"]["samples"]) == ("base", 2)
    assert (run.summary.answered_by, run.summary.samples) == ("base", 2)


def test_a_refused_setting_names_the_argument(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(unshifted_max=5, marginal_max=2), "unshifted_max"),
        (dict(top_k=0), "top_k"),
        (dict(beam_width=4), "beam_width"),
        (dict(temperature=0.0), "temperature"),
        (dict(top_p=1.5), "top_p"),
        (dict(samples=0), "samples"),
        (dict(answered_by="sft"), "answered_by"),
        (dict(base_context="no-such-context"), "study"),
    ]
    for extra, field in cases:
        with pytest.raises(aligntds.SettingError) as refused:
            aligntds.analyze(data=DEMO, out=tmp_path / "run", **{**STUDY, **extra})
        assert refused.value.field == field, extra
        assert field in str(refused.value)
    with pytest.raises(aligntds.SettingError) as refused:
        aligntds.analyze(data=DEMO, out=tmp_path / "run", **{**STUDY, "aligned": str(tmp_path / "none")})
    assert refused.value.field == "aligned"
    assert issubclass(aligntds.SettingError, ValueError)


def test_the_interrupt_key_leaves_a_folder_that_resumes(tmp_path: Path) -> None:
    many = [json.loads(line) for line in DEMO.read_text().splitlines()]
    study = {**STUDY, "data": many, "max_new_tokens": 24, "batch": 1}
    whole = aligntds.analyze(out=tmp_path / "whole", **study)
    seen: list[tuple[int, int]] = []

    def interrupt_after_the_first(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 1:
            _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        aligntds.analyze(out=tmp_path / "cut", **{**study, "progress": interrupt_after_the_first})
    parts = list((tmp_path / "cut" / "parts").iterdir())
    assert 0 < len(parts) <= 3, "stopped within a record of the interrupt, finished records kept"
    assert not (tmp_path / "cut" / "summary.json").exists()
    resumed: list[tuple[int, int]] = []
    run = aligntds.analyze(out=tmp_path / "cut", **{**study, "progress": lambda d, t: resumed.append((d, t))})
    assert resumed[0] == (len(parts), len(many)) and resumed[-1] == (len(many), len(many))
    assert positions(run.path).equals(positions(whole.path))


def test_progress_is_a_tqdm_bar_by_default(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    aligntds.analyze(data=RECORDS, out=tmp_path / "run", **{**STUDY, "progress": True})
    bar = capfd.readouterr().err
    assert "aligntds" in bar and f"{len(RECORDS)}/{len(RECORDS)}" in bar and "example" in bar
