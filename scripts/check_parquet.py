#!/usr/bin/env python3
"""Proves an analyze run's outputs are readable by pandas, polars and DuckDB and
agree with summary.json, side by side for a run with compared sides.
Usage: python3 scripts/check_parquet.py RUN_DIR"""
import json
import sys
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

run = Path(sys.argv[1])
path = run / "positions.parquet"
summary = json.loads((run / "summary.json").read_text())
# Every reference side in order (a pair run has one: base) with its aggregates.
sides = [(s["name"], s["aggregates"]) for s in summary.get("sides", [])] or [("base", summary["aggregates"])]
expected_rows = sum(a["positions"] for _, a in sides)
columns = ["example_id", "side", "position", "token_id", "token", "token_piece", "text", "aligned_logprob", "aligned_rank",
           "base_logprob", "base_rank", "category", "kl_aligned_base", "kl_base_aligned", "js", "aligned_entropy",
           "base_entropy", "log_ratio", "top1_agree", "aligned_top1_base_rank", "aligned_top_ids", "aligned_top_tokens",
           "aligned_top_logprobs", "base_top_ids", "base_top_tokens", "base_top_logprobs", "orig_kl_at_k",
           "orig_jaccard_at_k", "orig_ws_at_k", "orig_top_rank_at_k", "full_vocabulary"]

meta = pq.read_schema(path).metadata or {}
assert meta.get(b"schema_version") == b"2", meta
assert summary["schema_version"] == 2 and summary["aggregates"]["divergences"] == "exact"
df = pd.read_parquet(path)
assert list(df.columns) == columns, list(df.columns)
assert len(df) == expected_rows, (len(df), expected_rows)
assert list(df["side"].unique()) == [name for name, _ in sides], df["side"].unique()
for name, agg in sides:
    shifted = int(((df["side"] == name) & (df["category"] == "shifted")).sum())
    assert shifted == agg["counts"]["shifted"], (name, shifted)
assert (df["base_rank"] >= 1).all() and (df["kl_aligned_base"] >= -1e-6).all()
assert df["full_vocabulary"].all() and df["kl_aligned_base"].notna().all()  # the local engine fills every column

pf = pl.read_parquet(path)
assert pf.height == expected_rows and pf.columns == columns
for name, agg in sides:
    unshifted = pf.filter((pl.col("side") == name) & (pl.col("category") == "unshifted")).height
    assert unshifted == agg["counts"]["unshifted"], (name, unshifted)

con = duckdb.connect()
n = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
assert n == expected_rows
by_side = dict(con.execute(f"SELECT side, avg(kl_aligned_base) FROM read_parquet('{path}') GROUP BY side").fetchall())
for name, agg in sides:
    mean_kl = by_side[name]
    assert abs(mean_kl - agg["kl_aligned_base"]["mean"]) < 1e-9 * max(1.0, abs(mean_kl)), (name, mean_kl)
top = con.execute(f"SELECT list_count(aligned_top_ids) FROM read_parquet('{path}') LIMIT 1").fetchone()[0]
assert top == summary["manifest"]["settings"]["top_k"], top
# The per-token texts add up to each example's answer (what the report shows).
answers = {e["id"]: e["answer"] for e in map(json.loads, (run / "examples.jsonl").read_text().splitlines())}
joined = con.execute(f"SELECT example_id, side, string_agg(text, '' ORDER BY position) FROM read_parquet('{path}') GROUP BY example_id, side").fetchall()
for example_id, side, text in joined:
    assert text == answers[example_id], (example_id, side, text, answers[example_id])
print(f"positions.parquet: {n} rows ({len(sides)} side(s)) read alike by pandas {pd.__version__}, polars {pl.__version__}, duckdb {duckdb.__version__}")
