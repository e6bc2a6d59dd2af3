"""The change log: which sources each indexing run changed, kept in the collection's metadata.

App instances that share a Chroma server each keep their own BM25 index. To follow a reindex
without fetching every chunk, an instance reads here which sources the runs since its own
generation changed or removed, and fetches only those. Each entry names the generation that was
published before it, so the entries form a chain: an instance can follow when the chain leads
from the server's generation back to its own, with no missing link and no entry that changed
everything (a rebuild, or a run whose list would be too long to keep).

The log keeps the last runs only and stays under ``MAX_CHARS``: it is one string in the
collection's metadata, and every instance reads that metadata at each generation check.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 64_000
"""Largest the log's JSON may grow; the oldest entries go first."""
MAX_RUN_CHARS = MAX_CHARS // 2
"""A run whose entry would be longer is recorded as having changed everything."""


class ChangeLogGapError(LookupError):
    """The log cannot say what changed between two generations: the instance rebuilds its BM25 index."""


@dataclass(frozen=True)
class ChangeLog:
    """The last indexing runs' changes, oldest first."""

    runs: tuple[Change, ...] = ()

    @classmethod
    def from_json(cls, text: object) -> ChangeLog:
        """The log stored as ``text``; empty when there is none or it cannot be read (followers rebuild)."""
        if not isinstance(text, str):
            return cls()
        try:
            return cls(tuple(Change.from_dict(entry) for entry in json.loads(text)))
        except (ValueError, TypeError, KeyError):
            return cls()

    def to_json(self) -> str:
        return json.dumps([run.as_dict() for run in self.runs], separators=(",", ":"))

    def with_run(self, run: Change, keep: int) -> ChangeLog:
        """This log with ``run`` appended, then only the last ``keep`` runs that fit in ``MAX_CHARS``."""
        if len(json.dumps(run.as_dict(), separators=(",", ":"))) > MAX_RUN_CHARS:
            run = dataclasses.replace(run, changed=(), removed=(), everything=True)
        runs = [*(r for r in self.runs if r.generation != run.generation), run][-max(keep, 1):]
        while len(runs) > 1 and len(ChangeLog(tuple(runs)).to_json()) > MAX_CHARS:
            runs.pop(0)
        return ChangeLog(tuple(runs))

    def has(self, generation: int) -> bool:
        return any(run.generation == generation for run in self.runs)

    def touched_between(self, start: int, end: int) -> set[str]:
        """Every source changed or removed by the runs after generation ``start`` up to ``end``.

        Raises ``ChangeLogGapError``, saying why, when the log cannot tell: a run in between is no
        longer kept (or was never recorded), changed everything, or ``end`` does not descend from
        ``start`` at all (the collection was rebuilt, or restored from an older copy).
        """
        by_generation = {run.generation: run for run in self.runs}
        touched: set[str] = set()
        at: int | None = end
        walked = 0
        while at != start:
            run = by_generation.get(at) if at is not None else None
            # A chain never holds more runs than the log: past that it loops (a generation published twice).
            if run is None or walked == len(self.runs):
                raise ChangeLogGapError(f"generation {start} is not among the {len(self.runs)} runs the change "
                                        f"log holds before generation {end}")
            if run.everything:
                raise ChangeLogGapError(f"the run of generation {at} changed everything (a rebuild, or too "
                                        "many sources to list)")
            touched.update(run.changed, run.removed)
            at = run.previous
            walked += 1
        return touched


@dataclass(frozen=True)
class Change:
    """What one indexing run published: its generation, the one before it, and the sources it touched."""

    generation: int
    previous: int | None
    changed: tuple[str, ...]
    """Added or edited: their chunks are the ones the store holds now."""
    removed: tuple[str, ...]
    everything: bool = False
    """Too much to list (a rebuild, or a very large run): a follower rebuilds its whole BM25 index."""

    @classmethod
    def of(cls, generation: int, previous: int | None, changed: Iterable[str], removed: Iterable[str],
           everything: bool = False) -> Change:
        if everything:
            return cls(generation, previous, (), (), True)
        return cls(generation, previous, tuple(sorted(set(changed))), tuple(sorted(set(removed))))

    def as_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, "previous": self.previous, "changed": list(self.changed),
                "removed": list(self.removed), "everything": self.everything}

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Change:
        previous = entry["previous"]
        return cls(
            generation=int(entry["generation"]),
            previous=int(previous) if previous is not None else None,
            changed=tuple(str(s) for s in entry["changed"]),
            removed=tuple(str(s) for s in entry["removed"]),
            everything=bool(entry["everything"]),
        )
