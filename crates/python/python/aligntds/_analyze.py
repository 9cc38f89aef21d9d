"""`aligntds.analyze(...)`: a study from keyword arguments named as the
command line's flags, run by the same library."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from aligntds import _aligntds
from aligntds._run import Run
from aligntds._settings import Progress, Side, error, reporter, side_table, threads_setting

# The study's own settings: a study file's keys (`aligntds analyze --help`).
SETTINGS: tuple[str, ...] = tuple(_aligntds.SETTINGS)

#: The name of the data file `analyze` writes into the run folder when the
#: data come as records, a DataFrame, an Arrow table or a `datasets.Dataset`.
DATA_FILE = "data.jsonl"

def _records(data: Any) -> Iterable[Mapping[str, Any]]:
    """The records of an in-memory data set, as Python values."""
    if hasattr(data, "to_dicts"):  # polars
        return data.to_dicts()  # type: ignore[no-any-return]
    if hasattr(data, "to_pylist"):  # pyarrow
        return data.to_pylist()  # type: ignore[no-any-return]
    if hasattr(data, "to_list") and hasattr(data, "features"):  # datasets.Dataset
        return data.to_list()  # type: ignore[no-any-return]
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        return data.to_dict(orient="records")  # type: ignore[no-any-return]
    if isinstance(data, (list, tuple)) and all(isinstance(r, Mapping) for r in data):
        return data
    raise error(
        "data",
        f"a {type(data).__name__} is not a data set: give a path, a list of dicts, a pandas "
        "or polars DataFrame, a pyarrow Table or a datasets.Dataset",
    )


def _plain(value: Any) -> Any:
    """numpy scalars (from pandas) as the Python values they hold."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _write_data(data: Any, out: Path) -> Path:
    """In-memory records written once into the run folder, one JSON object
    per line in their order: the data file the run records and hashes, so
    the same records resume the run whatever form they come in."""
    lines = "".join(
        json.dumps(dict(r), ensure_ascii=False, default=_plain) + "\n" for r in _records(data)
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / DATA_FILE
    if not path.exists() or path.read_text(encoding="utf-8") != lines:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(lines, encoding="utf-8")
        tmp.replace(path)
    return path


def analyze(
    *,
    aligned: Side | None = None,
    base: Side | None = None,
    data: Any = None,
    query: str | None = None,
    out: str | os.PathLike[str] | None = None,
    compare: Mapping[str, Side] | None = None,
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
) -> Run:
    """Runs a study and returns its run folder, opened.

    The arguments are `aligntds analyze`'s flags with `_` (see docs/python.md):
    the two sides (a model reference, or a dict of a study file's side keys),
    the queries (`data`: a path, a list of dicts, a pandas or polars
    DataFrame, a pyarrow Table or a `datasets.Dataset`; or one `query`), the
    folder `out`, compared sides by name, a `study` file whose keys the
    arguments override, and the study's settings (`max_new_tokens=`,
    `dtype=`, `top_k=`, ...). Errors in settings raise `SettingError` with
    `.field` naming the argument. The interrupt key stops the run (raising
    KeyboardInterrupt) and leaves a folder that the same call resumes.
    `progress`: a tqdm bar (if tqdm is installed), False for none, or a
    callable taking (done, total). `device`: `cpu`, `cuda` or `cuda:N`;
    `threads`: the engine's CPU threads (set once per process).
    """
    spec = study_spec(
        aligned=aligned,
        base=base,
        data=data,
        query=query,
        out=out,
        compare=compare,
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
        folder = _aligntds.analyze(json.dumps(spec), report)
    finally:
        close()
    # The folder as the caller named it (the native side resolves it absolute).
    return Run.open(folder if out is None else out)


def study_spec(
    *,
    aligned: Side | None,
    base: Side | None,
    data: Any,
    query: str | None,
    out: str | os.PathLike[str] | None,
    compare: Mapping[str, Side] | None,
    study: str | os.PathLike[str] | None,
    aligned_context: str | None,
    base_context: str | None,
    group_by: str | None,
    overwrite: bool,
    strict: bool,
    shard: str | None,
    device: str | None,
    threads: int | None,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """`analyze`'s arguments as the native side takes them: a study file's
    table of the arguments, the study file it names and the run options.
    In-memory data are written into `out` here."""
    for name in settings:
        if name not in SETTINGS:
            raise error(name, f"not a setting of analyze; the settings are {', '.join(SETTINGS)}")
    threads_setting(threads)
    table: dict[str, Any] = {k: v for k, v in settings.items() if v is not None}
    if study is None or aligned is not None:
        table["aligned"] = side_table("aligned", aligned, aligned_context)
    if study is None or base is not None:
        table["base"] = side_table("base", base, base_context)
    if compare:
        table["compare"] = [{"name": n, **side_table("compare", s, None)} for n, s in compare.items()]
    if out is not None:
        table["out"] = os.fspath(out)
    if group_by is not None:
        table["group_by"] = group_by
    if query is not None:
        table["query"] = query
    if data is not None:
        if isinstance(data, (str, os.PathLike)):
            table["data"] = os.fspath(data)
        elif out is None:
            raise error("out", "give an output folder: in-memory data are written into it")
        else:
            table["data"] = os.fspath(_write_data(data, Path(out)))
    spec = {
        "study": None if study is None else os.fspath(study),
        "table": table,
        "overwrite": overwrite,
        "strict": strict,
        "shard": shard,
        "device": device,
    }
    return spec
