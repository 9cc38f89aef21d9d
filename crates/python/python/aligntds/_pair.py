"""`aligntds.Pair`: two models held in memory for interactive work, the live
demo's computations from Python, and `Example`, one analyzed answer."""

from __future__ import annotations

import json
from typing import Any, Literal, Sequence

from aligntds import _aligntds
from aligntds._run import ArrowData
from aligntds._settings import Progress, Side, error, reporter, side_table, threads_setting
from aligntds._summary import Counts

#: The settings a pair takes besides its sides (a study file's keys that
#: shape one answer); the study's data settings do not apply.
PAIR_SETTINGS: tuple[str, ...] = (
    "top_k",
    "unshifted_max",
    "marginal_max",
    "max_new_tokens",
    "stops",
    "dtype",
)


#: The sampling settings a pair's answer takes (greedy without them).
SAMPLING: tuple[str, ...] = ("temperature", "top_p", "top_k_sampling", "seed")


def _sampling(settings: dict[str, Any]) -> dict[str, Any]:
    for name in settings:
        if name not in SAMPLING:
            raise error(name, f"not an argument here; the sampling settings are {', '.join(SAMPLING)}")
    return settings


class Example:
    """One analyzed answer: from a `Pair`, or one record of a run
    (`Run.example`). Shows its tokens coloured by category in Jupyter."""

    def __init__(self, native: _aligntds.NativeExample) -> None:
        self._native = native
        #: The record as examples.jsonl holds it (docs/analysis.md).
        self.record: dict[str, Any] = json.loads(native.record_json())

    @property
    def id(self) -> str:
        """The record's id (`live` for a pair's answer)."""
        return str(self.record["id"])

    @property
    def query(self) -> str:
        """The query the answer answers."""
        return str(self.record["query"])

    @property
    def answer(self) -> str:
        """The answer's text."""
        return str(self.record["answer"])

    @property
    def answer_ids(self) -> list[int]:
        """The answer's token ids (the aligned side's tokenizer)."""
        return [int(i) for i in self.record["answer_ids"]]

    @property
    def stop_reason(self) -> str:
        """Why the answer ended: `eos`, `stop string "…"`, `max_new_tokens`,
        `context_full`, `dataset` (a given answer), ..."""
        return str(self.record["stop_reason"])

    @property
    def counts(self) -> Counts:
        """Positions per category under the base side."""
        return Counts._from(self.record)

    @property
    def chosen_by(self) -> list[str] | None:
        """Who chose each position (`aligned`, `base`, `prefix`, `replace`); None
        for an example read from a run."""
        return self._native.chosen_by

    def positions(self) -> ArrowData:
        """One row per answer position in positions.parquet's columns (side
        `base`), plus `chosen_by` for a pair's answer."""
        return ArrowData(self._native)

    def _repr_html_(self) -> str:
        """The answer's tokens coloured as the report colours them; hover a
        token for both models' ranks and top-10s (no script, no network)."""
        return self._native.html()

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"Example({self.id!r}: {len(self.answer_ids)} tokens, stop {self.stop_reason}; "
            f"unshifted {c.unshifted}, marginal {c.marginal}, shifted {c.shifted})"
        )


class Pair:
    """An aligned and a base model loaded once, for answers one at a time:
    `analyze` (the aligned side answers), `continue_` (a prefix kept, then
    either side continues: the live demo's branch), `score` (a given answer).
    Every position carries `analyze`'s metrics; each call shows a transient
    progress bar over the answer's tokens (`progress=False` for none, or a
    callable taking (done, total)) and stops at the interrupt key."""

    def __init__(
        self,
        *,
        aligned: Side | None = None,
        base: Side | None = None,
        aligned_context: str | None = None,
        base_context: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        **settings: Any,
    ) -> None:
        """The sides as `analyze` takes them (a model reference, or a dict of a
        study file's side keys) and `PAIR_SETTINGS` (`max_new_tokens` is the
        default answer length). Refused settings raise `SettingError`."""
        for name in settings:
            if name not in PAIR_SETTINGS:
                raise error(
                    name, f"not a setting of a pair; the settings are {', '.join(PAIR_SETTINGS)}"
                )
        threads_setting(threads)
        table: dict[str, Any] = {k: v for k, v in settings.items() if v is not None}
        table["aligned"] = side_table("aligned", aligned, aligned_context)
        table["base"] = side_table("base", base, base_context)
        self._native = _aligntds.NativePair(json.dumps({"table": table, "device": device}))

    @property
    def models(self) -> tuple[str, str]:
        """The aligned and the base model, as given."""
        return self._native.models

    def _run(
        self,
        query: str,
        answer: str | None,
        progress: Progress,
        **fields: Any,
    ) -> Example:
        """One request with serve's fields (`query` and those given, None left out)."""
        request = {"query": query, **{k: v for k, v in fields.items() if v is not None}}
        report, close = reporter(progress, unit="token", leave=False)
        try:
            native = self._native.run(json.dumps(request), answer, report)
        finally:
            close()
        return Example(native)

    def analyze(
        self,
        query: str,
        *,
        system: str | None = None,
        max_new_tokens: int | None = None,
        aligned_context: str | None = None,
        base_context: str | None = None,
        progress: Progress = True,
        **sampling: Any,
    ) -> Example:
        """The aligned side answers `query`, greedily or sampled (`temperature`,
        `top_p`, `top_k_sampling`, `seed`: the tokens `analyze` draws for a
        record with the id `live` under the same settings); both sides score
        every position (as `aligntds analyze` does with `response="generate"`)."""
        return self._run(
            query, None, progress, system=system, max_new_tokens=max_new_tokens,
            aligned_context=aligned_context, base_context=base_context, **_sampling(sampling),
        )

    def continue_(
        self,
        query: str,
        *,
        prefix_ids: Sequence[int] = (),
        with_: Literal["aligned", "base"] = "base",
        replace: int | None = None,
        system: str | None = None,
        max_new_tokens: int | None = None,
        aligned_context: str | None = None,
        base_context: str | None = None,
        progress: Progress = True,
        **sampling: Any,
    ) -> Example:
        """Keeps `prefix_ids` (its last token swapped for `replace`, if given)
        and lets `with_` write the rest: serve's branch ("continue with base
        from here"). `with_` is `with` in serve's API. With the sampling
        settings, answer position `t` takes draw `t` of the seed's stream, so
        the aligned side continuing a sampled answer's prefix writes its rest."""
        if with_ not in ("aligned", "base"):
            raise error("with_", f"{with_!r} is not a side; use \"aligned\" or \"base\"")
        return self._run(
            query, None, progress, prefix_ids=[int(i) for i in prefix_ids], replace=replace,
            system=system, max_new_tokens=max_new_tokens,
            aligned_context=aligned_context, base_context=base_context, **{"with": with_},
            **_sampling(sampling),
        )

    def score(
        self,
        query: str,
        answer: str,
        *,
        system: str | None = None,
        aligned_context: str | None = None,
        base_context: str | None = None,
        progress: Progress = True,
    ) -> Example:
        """Scores a given answer to `query`, tokenized as `analyze` tokenizes a
        data set's answer (the stop reason is `dataset`)."""
        return self._run(
            query, answer, progress, system=system,
            aligned_context=aligned_context, base_context=base_context,
        )

    def __repr__(self) -> str:
        aligned, base = self.models
        return f"Pair(aligned={aligned!r}, base={base!r})"
