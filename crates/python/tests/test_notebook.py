"""examples/notebook.ipynb runs headless from top to bottom (nbclient, a
real ipykernel) on the demo pair that setup fetches, and shows what it says
it shows: the run, the positions table, the plot, and coloured tokens."""

from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[3]
NOTEBOOK = REPO / "examples" / "notebook.ipynb"
MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_the_example_notebook_runs_and_shows_tokens() -> None:
    if not MODEL.exists():
        if os.environ.get("ALIGNTDS_ALLOW_MISSING") == "1":
            pytest.skip(f"{MODEL} is missing: run scripts/setup.sh")
        pytest.fail(f"{MODEL} is missing: run scripts/setup.sh (ALIGNTDS_ALLOW_MISSING=1 skips)")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = [sorted(o.get("data", {})) for o in outputs]
    assert ["image/png", "text/plain"] in kinds, "the plot"
    texts = [o["data"].get("text/plain", "") for o in outputs if "data" in o]
    assert any(t.startswith("Run('../runs/notebook': 6 examples") for t in texts), texts
    tokens = [o["data"]["text/html"] for o in outputs
              if o.get("data", {}).get("text/plain", "").startswith("Example(")]
    assert len(tokens) == 3 and all(html.count("<span ") >= 6 for html in tokens)
    assert all("<script" not in o.get("data", {}).get("text/html", "") for o in outputs)
    # The base model's branch marks the tokens it chose.
    assert "chosen by base" in tokens[2]
