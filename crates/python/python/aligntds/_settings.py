"""What `analyze` and `Pair` share: sides as a study file's tables, setting
errors, the thread pool and progress bars."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Union

from aligntds import _aligntds

Side = Union[str, "os.PathLike[str]", Mapping[str, Any]]
Progress = Union[bool, Callable[[int, int], None]]


def error(field: str, message: str) -> Exception:
    """A `SettingError` naming the keyword argument `field`."""
    e = _aligntds.SettingError(f"{field}: {message}")
    e.field = field
    return e


def side_table(name: str, side: Side | None, context: str | None) -> dict[str, Any]:
    """A side as a study file's table: a model reference, or a dict of the
    table's keys (model, context, chat_template, system, prefix, template,
    enable_thinking, servers, served_name)."""
    if side is None:
        raise error(name, "give the model (a checkpoint folder, a GGUF file or a Hub id)")
    table = {"model": os.fspath(side)} if isinstance(side, (str, os.PathLike)) else dict(side)
    if context is not None:
        table["context"] = context
    return table


def threads_setting(threads: int | None) -> None:
    """Sizes the engine's thread pool (once per process). Without `threads`,
    the matrix kernels are told the cores this process may use, as the
    command line tells them (they would count the machine's otherwise)."""
    if threads is not None:
        _aligntds.set_threads(int(threads))
        os.environ["RAYON_NUM_THREADS"] = str(int(threads))
    elif "RAYON_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        os.environ["RAYON_NUM_THREADS"] = str(cores or 1)


def reporter(
    progress: Progress, unit: str = "example", leave: bool = True
) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """The callback the native side calls with (done, total), and what closes
    it: `progress` itself if callable, a `tqdm.auto` bar if true (and tqdm is
    installed), else nothing."""
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None, lambda: None
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total or None, initial=done, unit=unit, desc="aligntds", leave=leave)
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close
