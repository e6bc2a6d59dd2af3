"""Storing a batch of uploads as one step: a file an upload replaces is kept aside until the upload is indexed.

An upload that fails to index is taken out again, and the file it replaced is put back (and indexed
again), so a bad upload never costs the source it was meant to replace. When indexing fails as a whole,
the uploads stay saved (a Reindex picks them up) and the files they replaced are dropped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from assistant.ui import render
from assistant.ui.uploads import CheckedUpload, UploadError, UploadExistsError, save_upload, target_path
from index.index_report import IndexReport

Notice = tuple[str, str]
"""``(kind, Markdown)``: kind is ``"error"``, ``"success"`` or ``"info"``."""
Reindex = Callable[[list[Path]], IndexReport]


class UploadBatch:
    """Uploads saved into ``sources_dir``, then indexed, then kept or rolled back file by file.

    ``explain`` turns an exception into the one line shown to the user.
    """

    def __init__(self, sources_dir: Path, explain: Callable[[BaseException], str]) -> None:
        self.sources_dir = sources_dir
        self.explain = explain
        self.notices: list[Notice] = []
        self.conflicts: list[CheckedUpload] = []
        """Uploads not saved because their name is taken: the user chooses what to do."""
        self._saved: list[tuple[Path, Path | None]] = []  # (path, backup of the file it replaced)

    @property
    def saved_any(self) -> bool:
        return bool(self._saved)

    def save(self, upload: CheckedUpload, name: str, replace: bool) -> None:
        """Save ``upload`` as ``name``; with ``replace``, the file already there is moved aside first."""
        backup: Path | None = None
        path: Path | None = None
        try:
            path = target_path(self.sources_dir, name)
            if replace and path.exists():
                backup = path.with_name(f".replaced-{os.getpid()}-{name}")
                os.replace(path, backup)
            save_upload(self.sources_dir, name, upload.data, overwrite=replace)
            self._saved.append((path, backup))
            if name != upload.original_name:
                self.notices.append(("info", f"{render.inline(upload.original_name)} was saved as "
                                             f"{render.inline(name)}."))
        except UploadExistsError:
            self.conflicts.append(upload)
        except (UploadError, OSError) as exc:
            if backup is not None and path is not None:
                with contextlib.suppress(OSError):
                    os.replace(backup, path)
            self.notices.append(("error", render.inline(self.explain(exc))))

    def index(self, reindex: Reindex) -> IndexReport | None:
        """Index the saved files; ``None`` when indexing failed as a whole (the uploads stay, unindexed)."""
        try:
            return reindex([path for path, _ in self._saved])
        except Exception as exc:
            self.notices.append(("error", f"Saved, but not indexed yet ({render.inline(self.explain(exc))}); "
                                          "click Reindex."))
            self._drop_backups(self._saved)
            return None

    def settle(self, report: IndexReport, reindex: Reindex) -> None:
        """Keep the uploads that indexed; take out those that failed, putting back the files they replaced."""
        failed = {f.path: f.reason for f in report.failed}
        restore: list[Path] = []
        for path, backup in self._saved:
            name = path.name
            if name in failed:
                with contextlib.suppress(OSError):
                    path.unlink()
                kept = ""
                if backup is not None:
                    with contextlib.suppress(OSError):
                        os.replace(backup, path)
                        restore.append(path)
                        # Without this, a reader cannot tell whether the source they replaced is gone.
                        kept = (f" The earlier version of {render.inline(name)} is kept; "
                                "fix the file and upload it again.")
                self.notices.append(("error", f"Not added: {render.inline(failed[name])}{kept}"))
            else:
                self._drop_backups([(path, backup)])
                self.notices.append(("success", f"Indexed {render.inline(name)}."))
        if restore:
            with contextlib.suppress(Exception):
                reindex(restore)

    @staticmethod
    def _drop_backups(saved: list[tuple[Path, Path | None]]) -> None:
        for _, backup in saved:
            if backup is not None:
                with contextlib.suppress(OSError):
                    backup.unlink()
