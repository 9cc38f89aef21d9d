#!/usr/bin/env python3
"""Spot-checks a built report against its runs' summary.json: the aggregates in
index.html and report.md, the figures, one page and one data script per
example. Usage: python3 scripts/check_report.py SITE_DIR RUN_DIR..."""
import json
import sys
from pathlib import Path

site = Path(sys.argv[1])
index = (site / "index.html").read_text()
md = (site / "report.md").read_text()
for fig in ["ratios", "top-shifted", "kl-by-position", "rank-by-position", "prob-by-position",
            "shifted-by-decile", "rank-histogram", "rank-cdf", "shifted-by-head"]:
    svg = (site / "figures" / f"{fig}.svg").read_text()
    assert svg.startswith("<svg") and svg in index, fig
for k, run in enumerate(map(Path, sys.argv[2:])):
    agg = json.loads((run / "summary.json").read_text())["aggregates"]
    for cat in ["unshifted", "marginal", "shifted"]:
        cell = f"{agg['ratios'][cat] * 100:.1f} % ({agg['counts'][cat]})"
        assert cell in index and cell in md, (run, cell)
    kl = f"{agg['kl_aligned_base']['mean']:.4f} ± {agg['kl_aligned_base']['se']:.4f}"
    assert kl in index and kl in md, (run, kl)
    for split in agg.get("position_splits", []):
        h = split["head"]["shifted"]
        cell = f"{h['value'] * 100:.1f} % [{h['low'] * 100:.1f}, {h['high'] * 100:.1f}]"
        assert cell in index and cell in md, (run, split["first"], cell)
    n = len((run / "examples.jsonl").read_text().splitlines())
    pages = sorted((site / f"r{k}").glob("e*.html"))
    data = sorted((site / "data" / f"r{k}").glob("e*.js"))
    assert len(pages) == n == len(data) == agg["examples"] + agg["skipped"]["examples"], (run, len(pages), len(data), n)
    print(f"{run.name}: aggregates, figures and {n} example pages agree with summary.json")
