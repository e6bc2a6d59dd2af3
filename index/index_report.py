"""What one indexing run did: the record ``Indexer`` fills in, and how the CLI, API and app show it."""

from __future__ import annotations

from dataclasses import dataclass, field

from index.discovery import SkippedLink


@dataclass(frozen=True)
class FileFailure:
    path: str
    reason: str


@dataclass
class IndexReport:
    """What one indexing run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    repaired: list[str] = field(default_factory=list)
    rebuilt_because: str | None = None
    """Why this run rebuilt the whole index on its own (a damaged vector index), if it did."""
    failed: list[FileFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Files of a type the loaders do not read."""
    links: list[SkippedLink] = field(default_factory=list)
    """Links not followed: pointing outside the folder, nowhere, or in a loop."""
    chunks_written: int = 0
    chunks_total: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.repaired)

    def as_dict(self) -> dict:
        """The report as `chokepoint index --json` and POST /v1/index give it."""
        return {
            "added": self.added, "updated": self.updated, "removed": self.removed,
            "unchanged": self.unchanged, "repaired": self.repaired, "skipped": self.skipped,
            "links_not_followed": [{"link": link.name, "target": link.target, "reason": link.reason}
                                   for link in self.links],
            "failed": [{"path": f.path, "reason": f.reason} for f in self.failed],
            "chunks_written": self.chunks_written, "chunks_total": self.chunks_total,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        line = (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.failed)} failed; "
            f"{self.chunks_written} chunks written, {self.chunks_total} in the index; {self.seconds:.1f} s"
        )
        if self.repaired:
            line += f"; repaired after an interrupted run: {len(self.repaired)} files"
        if self.rebuilt_because:
            line += f"; rebuilt from the sources because {self.rebuilt_because}"
        if self.links:
            line += f"; {len(self.links)} links not followed"
        return line
