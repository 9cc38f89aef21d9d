"""`aligntds.Pair` against the command line: an answer generated or scored in
memory carries what `aligntds analyze` writes for the same query and answer;
a branch keeps its prefix and lets the chosen side write greedily; an
Example renders as coloured, escaped, script-free HTML; settings errors name
the argument."""

from __future__ import annotations

import _thread
import json
import os
import re
import subprocess
import sys
import threading
import time
from html import unescape
from pathlib import Path

import polars
import pyarrow
import pyarrow.parquet
import pytest

import aligntds

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("ALIGNTDS_BIN", REPO / "target" / "release" / "aligntds"))
LLAMA = str(REPO / "fixtures" / "llama3")
QUERY = "Name three colours of the sea."
ANSWER = "Blue, green and grey.\nThe sea also turns <silver> at dawn & dusk."
EXACT = ["position", "token_id", "text", "aligned_rank", "base_rank", "category", "top1_agree"]
CLOSE = ["aligned_logprob", "base_logprob", "kl_aligned_base", "js"]


@pytest.fixture(scope="module")
def pair() -> aligntds.Pair:
    return aligntds.Pair(aligned=LLAMA, base=LLAMA, base_context="plain", max_new_tokens=12)


def cli(out: Path, *extra: str) -> pyarrow.Table:
    subprocess.run(
        [str(BINARY), "analyze", "--aligned", LLAMA, "--base", LLAMA, "--base-context", "plain",
         "--max-new-tokens", "12", "--out", str(out), "--quiet", *extra],
        check=True,
    )
    return pyarrow.parquet.read_table(out / "positions.parquet")


def assert_same_positions(got: aligntds.Example, expected: pyarrow.Table) -> None:
    frame = polars.DataFrame(got.positions())
    want = polars.from_arrow(expected)
    assert isinstance(want, polars.DataFrame)
    assert frame.height == want.height > 0
    for column in EXACT:
        assert frame[column].to_list() == want[column].to_list(), column
    for column in CLOSE:
        diff = (frame[column].cast(polars.Float64) - want[column].cast(polars.Float64)).abs().max()
        assert isinstance(diff, float) and diff <= 1e-4, (column, diff)


def test_an_answer_equals_analyzes_generated_one(pair: aligntds.Pair, tmp_path: Path) -> None:
    expected = cli(tmp_path / "run", "--query", QUERY, "--response", "generate")
    example = pair.analyze(QUERY)
    assert_same_positions(example, expected)
    line = json.loads((tmp_path / "run" / "examples.jsonl").read_text().splitlines()[0])
    assert example.answer_ids == line["answer_ids"] and example.answer == line["answer"]
    assert example.stop_reason == line["stop_reason"] == "max_new_tokens"
    assert (example.counts.unshifted, example.counts.marginal, example.counts.shifted) == (
        line["unshifted"], line["marginal"], line["shifted"])
    assert example.chosen_by == ["aligned"] * 12
    assert polars.DataFrame(example.positions())["chosen_by"].to_list() == example.chosen_by


def test_a_scored_answer_equals_analyzes_scoring_of_it(pair: aligntds.Pair, tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"query": QUERY, "output": ANSWER}) + "\n")
    expected = cli(tmp_path / "run", "--data", str(data))
    example = pair.score(QUERY, ANSWER)
    assert_same_positions(example, expected)
    assert example.answer == ANSWER and example.stop_reason == "dataset"
    assert set(example.chosen_by or []) == {"prefix"}


def test_a_branch_keeps_its_prefix_and_the_base_writes_greedily(pair: aligntds.Pair) -> None:
    main = pair.analyze(QUERY)
    swapped = (main.answer_ids[2] + 1) % 128
    branch = pair.continue_(QUERY, prefix_ids=main.answer_ids[:3], replace=swapped, max_new_tokens=8)
    assert branch.answer_ids[:3] == main.answer_ids[:2] + [swapped]
    assert branch.chosen_by == ["prefix", "prefix", "replace"] + ["base"] * 8
    frame = polars.DataFrame(branch.positions())
    # The base side chose greedily: its rank of its own tokens is 1.
    assert frame["base_rank"].to_list()[3:] == [1] * 8
    # The aligned side continuing its own prefix writes its own answer.
    aligned = pair.continue_(QUERY, prefix_ids=main.answer_ids[:3], with_="aligned", max_new_tokens=9)
    assert aligned.answer_ids == main.answer_ids


def test_an_example_renders_coloured_escaped_and_without_scripts(pair: aligntds.Pair) -> None:
    example = pair.score("Say <b>hi</b> & bye", ANSWER)
    html = example._repr_html_()
    frame = polars.DataFrame(example.positions())
    assert html.count("<span ") == frame.height
    assert "<script" not in html and "<b>hi" not in html and "<silver" not in html
    assert "Say &lt;b&gt;hi&lt;/b&gt; &amp; bye" in html
    # The spans' texts, unescaped, are the answer (an empty share shows as ∅).
    texts = re.findall(r'<span style="[^"]*" title="[^"]*">([^<]*)</span>', html)
    assert len(texts) == frame.height
    assert "".join(unescape(t) for t in texts if t != "∅") == example.answer == ANSWER
    filled = html.count("<span style=\"background:#c2410c")
    dashed = html.count("<span style=\"background:#fbe3b5")
    categories = frame["category"].to_list()
    assert (filled, dashed) == (categories.count("shifted"), categories.count("marginal"))
    # Every token's hover text holds both top-10 lists.
    assert html.count("aligned top-10: ") == html.count("base top-10: ") == frame.height
    # A token the base side chose is coloured by its aligned rank.
    branch = pair.continue_(QUERY, prefix_ids=example.answer_ids[:1], max_new_tokens=6)
    assert "chosen by base (coloured by its aligned rank:" in branch._repr_html_()


def test_a_runs_example_reads_back_with_its_positions(tmp_path: Path) -> None:
    cli(tmp_path / "run", "--query", QUERY, "--response", "generate")
    run = aligntds.Run.open(tmp_path / "run")
    example = run.example(index=0)
    assert example.id == run.example("0").id == "0"
    assert example.chosen_by is None
    frame = polars.DataFrame(example.positions())
    assert frame["token_id"].to_list() == example.answer_ids
    assert "chosen_by" not in frame.columns
    assert example._repr_html_().count("<span ") == frame.height
    for pick in ({"index": 5}, {"id": "nope"}):
        with pytest.raises(aligntds.RunError, match="examples.jsonl"):
            run.example(**pick)  # type: ignore[arg-type]


def test_refused_requests_name_the_argument(pair: aligntds.Pair) -> None:
    cases = [
        (lambda: pair.score(QUERY, ""), "answer"),
        (lambda: pair.analyze("  "), "query"),
        (lambda: pair.continue_(QUERY, prefix_ids=[10**6]), "prefix_ids"),
        (lambda: pair.continue_(QUERY, prefix_ids=[], replace=3), "replace"),
        (lambda: pair.continue_(QUERY, prefix_ids=[1], with_="judge"), "with_"),  # type: ignore[arg-type]
        (lambda: pair.analyze(QUERY, max_new_tokens=0), "max_new_tokens"),
        (lambda: pair.analyze(QUERY, base_context="input"), "base_context"),
        (lambda: aligntds.Pair(aligned=LLAMA, base=LLAMA, top_k=0), "top_k"),
        (lambda: aligntds.Pair(aligned=LLAMA, base=LLAMA, limit=3), "limit"),
        (lambda: aligntds.Pair(aligned=LLAMA + "-missing", base=LLAMA), "aligned"),
        (lambda: aligntds.Pair(aligned=LLAMA, base=LLAMA, device="tpu"), "device"),
        (lambda: aligntds.Pair(aligned=LLAMA, base=LLAMA, threads=0), "threads"),
    ]
    for call, field in cases:
        with pytest.raises(aligntds.SettingError) as refused:
            call()
        assert refused.value.field == field, (field, refused.value)


def test_threads_size_the_pool_once_per_process() -> None:
    script = f"""
import aligntds
pair = aligntds.Pair(aligned={LLAMA!r}, base={LLAMA!r}, threads=1, max_new_tokens=3)
pair.analyze("Hello?")
aligntds.Pair(aligned={LLAMA!r}, base={LLAMA!r}, threads=1)
try:
    aligntds.Pair(aligned={LLAMA!r}, base={LLAMA!r}, threads=2)
except aligntds.SettingError as e:
    print(e.field, "|", e)
"""
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert out.stdout.startswith("threads | threads: this process's thread pool already has 1 threads"), out


def test_the_interrupt_key_stops_an_answer_within_a_second() -> None:
    model = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not model.exists():
        if os.environ.get("ALIGNTDS_ALLOW_MISSING") == "1":
            pytest.skip(f"{model} is missing: run scripts/setup.sh")
        pytest.fail(f"{model} is missing: run scripts/setup.sh (ALIGNTDS_ALLOW_MISSING=1 skips)")
    # The demo model writes about 30 tokens a second here with both sides: 3,000 take minutes.
    pair = aligntds.Pair(aligned=str(model), base=str(model), dtype="q", max_new_tokens=3000)
    seen: list[tuple[int, int]] = []
    fired: list[float] = []

    def interrupt() -> None:
        fired.append(time.monotonic())
        _thread.interrupt_main()

    threading.Timer(1.0, interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        pair.analyze("Write a detailed essay about the history of Rome.",
                     progress=lambda done, total: seen.append((done, total)))
    assert fired and time.monotonic() - fired[0] < 1.0
    # Progress came as the answer grew, against the answer's length.
    assert len(seen) >= 3 and {t for _, t in seen} == {3000}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] > 0
    # The pair is whole afterwards.
    assert pair.analyze("Hello?", max_new_tokens=4).stop_reason in ("eos", "max_new_tokens")


def test_a_sampled_answer_is_the_seeds_and_its_prefix_continues_it(pair: aligntds.Pair, tmp_path: Path) -> None:
    sampled = pair.analyze(QUERY, temperature=1.0, seed=4)
    assert pair.analyze(QUERY, temperature=1.0, seed=4).answer_ids == sampled.answer_ids
    assert pair.analyze(QUERY, temperature=1.0, seed=5).answer_ids != sampled.answer_ids
    assert pair.analyze(QUERY).answer_ids != sampled.answer_ids
    branch = pair.continue_(QUERY, prefix_ids=sampled.answer_ids[:4], with_="aligned",
                            max_new_tokens=8, temperature=1.0, seed=4)
    assert branch.answer_ids == sampled.answer_ids
    # analyze draws the same tokens for a record with the id `live`.
    run = aligntds.analyze(aligned=LLAMA, base=LLAMA, base_context="plain", max_new_tokens=12,
                           data=[{"id": "live", "instruction": QUERY}], out=tmp_path / "run",
                           temperature=1.0, seed=4, progress=False)
    assert run.example("live").answer_ids == sampled.answer_ids
    for bad, field in [({"temperature": 0.0}, "temperature"), ({"beam": 2}, "beam")]:
        with pytest.raises(aligntds.SettingError) as refused:
            pair.analyze(QUERY, **bad)
        assert refused.value.field == field
