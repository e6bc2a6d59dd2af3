"""The sidebar's Index section, drawn with Streamlit: index status, Reindex, and uploads.

Uploads are checked (``uploads``), then saved and indexed as one batch (``upload_batch``); a name
already taken asks the user to replace the file, keep both, or cancel. What happened shows until the
next upload, the last indexing report until the next run (kept in the session state that ``app.py``
sets up: ``last_report``, ``upload_notices``, ``conflicts``, ``uploader_key``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import streamlit as st

from assistant.engine import Engine
from assistant.ui import render
from assistant.ui.index_report import progress_hook, report_record
from assistant.ui.upload_batch import UploadBatch
from assistant.ui.uploads import CheckedUpload, UploadError, check_upload, free_name
from index.loaders import SUPPORTED_SUFFIXES

Explain = Callable[[BaseException], str]
"""Turns an exception into the one line shown to the user."""


def index_view(engine: Engine, explain: Explain) -> None:
    """The sidebar's Index section: status, the Reindex button and its report, uploads and their conflicts."""
    st.header("Index")
    status_box = st.container()
    rebuild = st.checkbox("Rebuild from scratch", key="rebuild",
                          help="Drop the index and embed every source again.")
    if st.button("Reindex", key="reindex", icon=":material/refresh:"):
        _run_reindex(engine, rebuild, explain)
        st.rerun()  # fresh status and filter choices
    if st.session_state.last_report:
        _show_report(st.session_state.last_report)
    _upload_section(engine, explain)
    with status_box:
        try:
            status = engine.status()
            st.markdown(f"**Sources:** {status.sources} · **Chunks:** {status.chunks}  \n"
                        f"**Embedding model:** {render.inline(status.embedding_model)}  \n"
                        f"**Last indexed:** {render.inline(status.last_indexed or 'never')}")
        except Exception as exc:
            st.error(f"Index status unavailable: {explain(exc)}")


def _show_report(record: dict[str, Any]) -> None:
    if record.get("error"):
        st.error(record["error"])
        return
    (st.success if record["ok"] else st.warning)(render.inline(record["summary"]))
    for label in ("added", "updated", "removed"):
        if record[label]:
            names = ", ".join(record[label][:20]) + (" …" if len(record[label]) > 20 else "")
            st.caption(f"**{label.capitalize()}:** {render.inline(names)}")
    for reason in record["failed"]:
        st.error(f"Failed: {render.inline(reason)}")
    for link in record.get("links", []):
        st.warning(f"Link not followed: {render.inline(link)}")


def _run_reindex(engine: Engine, rebuild: bool, explain: Explain) -> None:
    bar = st.progress(0.0, text="Checking files…")
    try:
        report = engine.reindex(rebuild=rebuild, progress=progress_hook(bar))
        st.session_state.last_report = report_record(report)
    except Exception as exc:
        st.session_state.last_report = {"error": f"Reindexing failed: {explain(exc)}"}
    finally:
        bar.empty()


def _store_uploads(engine: Engine, items: list[tuple[CheckedUpload, str, bool]], explain: Explain) -> None:
    """Save uploads (name, replace?) and index them right away; a file that fails to index is taken out."""
    batch = UploadBatch(engine.settings.sources_dir, explain)
    for upload, name, replace in items:
        batch.save(upload, name, replace)
    st.session_state.conflicts.extend(batch.conflicts)
    if batch.saved_any:
        bar = st.progress(0.0, text="Indexing…")
        try:
            report = batch.index(lambda paths: engine.reindex(paths, progress=progress_hook(bar)))
        finally:
            bar.empty()
        if report is not None:
            batch.settle(report, engine.reindex)
            st.session_state.last_report = report_record(report)
    st.session_state.upload_notices.extend(batch.notices)


def _upload_section(engine: Engine, explain: Explain) -> None:
    settings = engine.settings
    max_bytes = int(settings.max_file_mb * 1e6)
    files = st.file_uploader(
        "Add sources: Markdown, text, HTML, PDF or Word",
        type=[suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES], accept_multiple_files=True,
        key=f"uploader-{st.session_state.uploader_key}",
        help=f"Up to {settings.max_file_mb:g} MB each; indexed right away.",
        max_upload_size=max(1, math.ceil(settings.max_file_mb)),
    )
    if files:
        st.session_state.upload_notices = []
        items = []
        for file in files:
            try:
                upload = check_upload(file.name, file.getvalue(), max_bytes)
                items.append((upload, upload.name, False))
            except UploadError as exc:
                st.session_state.upload_notices.append(("error", render.inline(str(exc))))
        _store_uploads(engine, items, explain)
        st.session_state.uploader_key += 1
        st.rerun()

    for i, upload in enumerate(list(st.session_state.conflicts)):
        st.warning(f"**{render.inline(upload.name)}** is already in the sources folder.")
        replace, keep, skip = st.columns(3)
        if replace.button("Replace", key=f"conflict-replace-{i}"):
            st.session_state.conflicts.pop(i)
            st.session_state.upload_notices = []
            _store_uploads(engine, [(upload, upload.name, True)], explain)
            st.rerun()
        if keep.button("Keep both", key=f"conflict-keep-{i}"):
            st.session_state.conflicts.pop(i)
            st.session_state.upload_notices = []
            _store_uploads(engine, [(upload, free_name(settings.sources_dir, upload.name), False)], explain)
            st.rerun()
        if skip.button("Cancel", key=f"conflict-skip-{i}"):
            st.session_state.conflicts.pop(i)
            st.rerun()
    for kind, text in st.session_state.upload_notices:
        {"error": st.error, "success": st.success}.get(kind, st.info)(text)
