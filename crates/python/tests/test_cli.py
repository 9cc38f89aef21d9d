"""The command line from pip: the `aligntds` console script and `python -m
aligntds` against the cargo-built binary: the same run from the same
arguments, the same failures with exit code 2, and the interrupt key stopping
the process as it stops the binary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("ALIGNTDS_BIN", REPO / "target" / "release" / "aligntds"))
SCRIPT = Path(sys.executable).parent / "aligntds"
LLAMA = str(REPO / "fixtures" / "llama3")
DATA = str(REPO / "data" / "demo-instructions.jsonl")


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True)


def test_the_console_script_runs_the_binarys_study(tmp_path: Path) -> None:
    study = ["analyze", "--aligned", LLAMA, "--base", LLAMA, "--base-context", "plain",
             "--data", DATA, "--limit", "3", "--max-new-tokens", "6", "--quiet"]
    outs = {}
    for name, command in [("binary", [str(BINARY)]), ("script", [str(SCRIPT)]),
                          ("module", [sys.executable, "-m", "aligntds"])]:
        done = run([*command, *study, "--out", str(tmp_path / name)])
        assert done.returncode == 0, done.stderr
        outs[name] = pyarrow.parquet.read_table(tmp_path / name / "positions.parquet")
    assert outs["script"].equals(outs["binary"]) and outs["module"].equals(outs["binary"])


def test_versions_help_and_failures_match_the_binary(tmp_path: Path) -> None:
    for args in (["--version"], ["summarize", "--help"], ["summarize", str(tmp_path)], ["nonsense"]):
        want = run([str(BINARY), *args])
        for command in ([str(SCRIPT)], [sys.executable, "-m", "aligntds"]):
            got = run([*command, *args])
            assert (got.returncode, got.stdout, got.stderr) == (
                want.returncode, want.stdout, want.stderr), (command, args)
    assert run([str(SCRIPT), "summarize", str(tmp_path)]).returncode == 2
    assert "summary.json" in run([str(SCRIPT), "summarize", str(tmp_path)]).stderr


def test_the_interrupt_key_stops_the_script_as_it_stops_the_binary() -> None:
    for command in ([str(BINARY)], [str(SCRIPT)]):
        serve = subprocess.Popen(
            [*command, "serve", "--aligned", LLAMA, "--base", LLAMA, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            # As from a terminal, whatever this test runner's own signal setup.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert serve.stdout is not None
        for line in serve.stdout:
            if "models loaded" in line:
                break
        sent = time.monotonic()
        serve.send_signal(signal.SIGINT)
        try:
            code = serve.wait(timeout=5)
        finally:
            serve.kill()
        assert code == -signal.SIGINT and time.monotonic() - sent < 1.0, (command, code)
