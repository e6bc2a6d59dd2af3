"""Turn a file on disk into a ``SourceDocument``: its text and what we know about it.

One loader per format. Every failure is a ``LoadError`` naming the file and the reason, so
the indexer can report it and carry on with the other files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from index.attribution import Attribution, AttributionError, attributed

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")

log = logging.getLogger(__name__)

_PARSER_LOGGERS = ("pypdf", "docx", "bs4")
"""Parsers that log their own complaints ("EOF marker not found") beside our one-line error."""


class LoadError(Exception):
    """A file could not be read; ``str()`` is a sentence a user can act on."""


@dataclass(frozen=True)
class SourceDocument:
    """The text of one source file and its metadata.

    ``pages`` maps character offsets to page numbers (PDF only): page ``pages[i][1]`` starts at
    character ``pages[i][0]`` of ``text``.
    """

    path: str
    text: str
    title: str
    publisher: str = ""
    date: str = ""
    url: str = ""
    topics: tuple[str, ...] = ()
    summary: str = ""
    pages: tuple[tuple[int, int], ...] = field(default=())
    kind: str = "text"
    attributions: tuple[Attribution, ...] = ()
    """The reports each block of a note cites (Markdown with ``[@id]`` citations only)."""

    def page_at(self, offset: int) -> int | None:
        """The page number holding character ``offset``, or None when the format has no pages."""
        page = None
        for start, number in self.pages:
            if start > offset:
                break
            page = number
        return page


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def load(path: Path, *, display_path: str | None = None, max_bytes: int | None = None) -> SourceDocument:
    """Load one file. ``display_path`` is how the file is named in the index and in errors."""
    name = display_path or str(path)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise LoadError(f"{name}: unsupported file type {path.suffix or '(none)'!r}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LoadError(f"{name}: cannot read the file ({exc.strerror})") from exc
    if max_bytes is not None and size > max_bytes:
        raise LoadError(
            f"{name}: file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit "
            "(raise CHOKEPOINT_MAX_FILE_MB to index it)"
        )
    if size == 0:
        raise LoadError(f"{name}: file is empty")
    try:
        with _parser_messages_as_debug(name):
            doc = loader(path, name)
    except LoadError:
        raise
    except Exception as exc:  # a parser's own error: report it against the file, keep going
        raise LoadError(f"{name}: cannot parse {path.suffix} file ({type(exc).__name__}: {exc})") from exc
    if not doc.text.strip():
        hint = "a scanned PDF, with images of text only?" if path.suffix.lower() == ".pdf" else "an empty document?"
        raise LoadError(f"{name}: no text found ({hint})")
    return doc


@contextlib.contextmanager
def _parser_messages_as_debug(name: str) -> Iterator[None]:
    """Route what the parsers log or warn while reading ``name`` to our log at debug level.

    A user sees one sentence per failed file (the ``LoadError``); the parser's own wording, which
    names no file, is there for whoever turns on debug logging.
    """
    handler = _ToDebug(name)
    loggers = [logging.getLogger(parser) for parser in _PARSER_LOGGERS]
    saved = [parser_log.propagate for parser_log in loggers]
    for parser_log in loggers:
        parser_log.addHandler(handler)
        parser_log.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for parser_log, propagate in zip(loggers, saved, strict=True):
            parser_log.removeHandler(handler)
            parser_log.propagate = propagate
        for warning in caught:
            log.debug("%s: %s", name, warning.message)


class _ToDebug(logging.Handler):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.source = name

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("%s: %s says: %s", self.source, record.name, record.getMessage())


def _read_text(path: Path, name: str) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise LoadError(f"{name}: looks like binary data, not text (NUL bytes); remove or rename it")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Latin-1 never fails; a legacy-encoded note is better indexed than lost. We only accept
        # it when the result is mostly printable, so junk still gets reported.
        text = data.decode("latin-1")
        printable = sum(ch.isprintable() or ch.isspace() for ch in text[:20000])
        if printable < 0.95 * min(len(text), 20000):
            raise LoadError(f"{name}: not UTF-8 text and not readable as Latin-1; save it as UTF-8") from exc
    control = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if control > 0.01 * min(len(text), 20000) + 2:
        raise LoadError(f"{name}: looks like binary data, not text; remove or rename it")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _title_from_path(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip().capitalize() or path.name


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)
MAX_FRONT_MATTER_CHARS = 64_000
"""Front matter holds a few metadata fields (the corpus's largest is under 4 KB); parsing megabytes
of YAML takes tens of seconds, so more than this is reported, not parsed."""


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float):
        return str(value).strip()
    # A list or mapping where one value belongs is ignored: its str() is no title, and YAML aliases
    # can make a small file expand to gigabytes of text when printed (a "billion laughs").
    return ""


def load_markdown(path: Path, name: str) -> SourceDocument:
    """Markdown; YAML front matter becomes metadata and is kept out of the indexed text.

    The text keeps the front matter's length as blank lines, so character offsets still point
    into the file a reader opens.
    """
    raw = _read_text(path, name)
    meta: dict = {}
    text = raw
    match = _FRONT_MATTER.match(raw)
    if match:
        if len(match.group(1)) > MAX_FRONT_MATTER_CHARS:
            raise LoadError(
                f"{name}: front matter is {len(match.group(1)) / 1000:.0f} KB, over the "
                f"{MAX_FRONT_MATTER_CHARS / 1000:.0f} KB limit; keep it to metadata fields and move text below "
                "the closing ---"
            )
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            raise LoadError(f"{name}: front matter is not valid YAML ({exc.__class__.__name__})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise LoadError(f"{name}: front matter must be a YAML mapping of fields")
        meta = loaded or {}
        text = re.sub(r"[^\n]", " ", match.group(0)) + raw[match.end():]
    sources = meta.get("sources") if isinstance(meta.get("sources"), list) else []
    try:
        text, attributions = attributed(text, sources)
    except AttributionError as exc:
        raise LoadError(f"{name}: {exc}") from exc
    first = next((s for s in sources if isinstance(s, dict) and s.get("url")), None) or (
        sources[0] if sources and isinstance(sources[0], dict) else {}
    )
    topics = meta.get("topics") or []
    if isinstance(topics, str):
        topics = [t.strip() for t in topics.split(",")]
    elif not isinstance(topics, list):
        topics = []
    heading = re.search(r"^#\s+(.+)$", text, re.M)
    title = _as_text(meta.get("title")) or (heading.group(1).strip() if heading else _title_from_path(path))
    return SourceDocument(
        path=name,
        text=text,
        title=title,
        publisher=_as_text(meta.get("publisher") or first.get("publisher")),
        date=_as_text(meta.get("date")),
        url=_as_text(meta.get("url") or first.get("url")),
        topics=tuple(_as_text(t) for t in topics if _as_text(t)),
        summary=_as_text(meta.get("summary")),
        kind="markdown",
        attributions=attributions,
    )


def load_text(path: Path, name: str) -> SourceDocument:
    text = _read_text(path, name)
    return SourceDocument(path=name, text=text, title=_title_from_path(path), kind="text")


def load_html(path: Path, name: str) -> SourceDocument:
    """Main text of an HTML page: no scripts, styles, navigation, headers or footers."""
    # A format's parser loads only when a file of that format is read.
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text(path, name), "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "aside", "form",
                     "iframe", "svg", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.find("main") or soup.find("article") or soup.body or soup
    blocks: list[str] = []
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre",
                                  "blockquote", "td", "dt", "dd"]):
        if element.find(["p", "li", "h1", "h2", "h3", "h4", "td"]):
            continue  # a container: its children carry the text
        words = element.get_text(" ", strip=True)
        if not words:
            continue
        if element.name and element.name[0] == "h" and element.name[1:].isdigit():
            words = "#" * int(element.name[1]) + " " + words
        blocks.append(words)
    if not blocks:
        blocks = [body.get_text("\n", strip=True)]
    meta = {m.get("name", m.get("property", "")).lower(): m.get("content", "")
            for m in soup.find_all("meta") if m.get("content")}
    return SourceDocument(
        path=name,
        text="\n\n".join(blocks),
        title=title or _title_from_path(path),
        publisher=meta.get("og:site_name", "") or meta.get("publisher", ""),
        date=meta.get("date", "") or meta.get("article:published_time", "")[:10],
        url=meta.get("og:url", ""),
        kind="html",
    )


def load_pdf(path: Path, name: str) -> SourceDocument:
    """PDF text page by page; each page's start offset is kept so chunks know their page."""
    # A format's parser loads only when a file of that format is read.
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            raise LoadError(f"{name}: PDF is encrypted; save an unlocked copy")
        parts: list[str] = []
        pages: list[tuple[int, int]] = []
        offset = 0
        for number, page in enumerate(reader.pages, start=1):
            page_text = (page.extract_text() or "").replace("\r\n", "\n").strip()
            pages.append((offset, number))
            parts.append(page_text)
            offset += len(page_text) + 2
        title = ""
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title).strip()
    except PdfReadError as exc:
        raise LoadError(f"{name}: corrupt or unreadable PDF ({exc})") from exc
    return SourceDocument(
        path=name, text="\n\n".join(parts), title=title or _title_from_path(path),
        pages=tuple(pages), kind="pdf",
    )


def load_docx(path: Path, name: str) -> SourceDocument:
    """DOCX paragraphs; Word heading styles become Markdown headings so chunking sees sections."""
    # A format's parser loads only when a file of that format is read.
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError) as exc:
        raise LoadError(f"{name}: not a valid DOCX file (is it a renamed .doc or a damaged download?)") from exc
    blocks = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name or "") if paragraph.style is not None else ""
        level = re.match(r"Heading (\d)", style)
        blocks.append(("#" * int(level.group(1)) + " " + text) if level else text)
    props = document.core_properties
    return SourceDocument(
        path=name,
        text="\n\n".join(blocks),
        title=(props.title or "").strip() or _title_from_path(path),
        publisher=(props.author or "").strip(),
        date=props.created.date().isoformat() if props.created else "",
        kind="docx",
    )


_LOADERS: dict[str, Callable[[Path, str], SourceDocument]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}
