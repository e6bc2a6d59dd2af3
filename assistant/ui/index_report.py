"""An indexing run as the sidebar shows it: a progress hook for a progress bar, and the report kept in the session."""

from __future__ import annotations

from typing import Any

from index.index_report import IndexReport
from index.indexer import ProgressHook

STAGES = {"scan": "Checking files", "files": "Reading files", "chunks": "Embedding chunks"}


def progress_hook(bar: Any) -> ProgressHook:
    """A hook that moves ``bar`` (a Streamlit progress bar) and names the stage."""
    def hook(stage: str, done: int, total: int) -> None:
        fraction = min(1.0, done / total) if total else 1.0
        bar.progress(fraction, text=f"{STAGES.get(stage, stage)}: {done}/{total}")

    return hook


def report_record(report: IndexReport) -> dict[str, Any]:
    """The report as plain data for the session state (shown until the next run)."""
    return {"summary": report.summary(), "ok": report.ok, "added": report.added, "updated": report.updated,
            "removed": report.removed, "failed": [f.reason for f in report.failed], "skipped": report.skipped,
            "links": [link.describe() for link in report.links]}
