"""Which files an indexing run reads, and the names they go by in the index.

A source name is what a citation shows, so it never shows the machine's layout:

- a file under the sources folder is named by its path there (``reports/a.pdf``);
- a folder given on the command line outside it is named ``external/<folder>/<path inside>``.
  Two such folders with the same name (``/a/data``, ``/b/data``) are told apart by a short hash
  of the full path; the manifest remembers which folder holds each label, so names stay put
  from one run to the next.

A sources folder is often filled from outside (a synced share, an unpacked archive), so a link
in it must not pull in any file the app's user can read: links are followed only while their
target stays inside the folder being walked, unless the operator allows it on purpose. Folder
links are followed too, and a link back to a folder above it is reported, not walked forever.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from index.loaders import is_supported

EXTERNAL = "external"
"""Name prefix of sources indexed from folders outside the sources folder."""

ALLOW_SETTING = "CHOKEPOINT_FOLLOW_EXTERNAL_LINKS=true"


def discover(roots: list[Path], sources_dir: Path, *, follow_external_links: bool = False,
             external_labels: dict[str, str] | None = None) -> Discovery:
    """Walk ``roots`` (folders or files) and name every supported file found.

    ``external_labels`` maps each ``external/<label>`` already in the index to the full path of
    the folder it came from (the manifest keeps it); labels this run claims come back in
    ``Discovery.new_labels``.
    """
    walk = _Walk(sources_dir, follow_external_links, dict(external_labels or {}))
    for root in roots:
        walk.root(root)
    return walk.result()


def is_under(name: str, prefix: str, external_labels: dict[str, str]) -> bool:
    """Whether the source ``name`` lies under the walked root named ``prefix``.

    The sources folder itself (prefix ``""``) holds every relative name except those of folders
    indexed from outside it.
    """
    if prefix == "":
        if name.startswith("/"):
            return False
        return not any(name.startswith(f"{EXTERNAL}/{label}/") for label in external_labels)
    return name == prefix or name.startswith(prefix.rstrip("/") + "/")


class _Walk:
    def __init__(self, sources_dir: Path, follow_external_links: bool, labels: dict[str, str]) -> None:
        self.sources_dir = sources_dir
        self.sources_real = _real(sources_dir) or Path(os.path.abspath(sources_dir))
        self.follow_external_links = follow_external_links
        self.labels = labels
        self.new_labels: dict[str, str] = {}
        self.found: dict[Path, _Found] = {}
        self.unsupported: list[str] = []
        self.links: list[SkippedLink] = []
        self.scanned: list[str] = []
        self.walked_links: set[Path] = set()

    def result(self) -> Discovery:
        files: dict[str, Path] = {}
        for found in sorted(self.found.values(), key=lambda f: f.name):
            files.setdefault(found.name, found.path)
        return Discovery(files, sorted(set(self.unsupported)), self.links, self.scanned, self.new_labels)

    def root(self, root: Path) -> None:
        if not root.exists():
            if root.is_symlink():
                raise FileNotFoundError(f"{root}: the link points to {os.readlink(root)}, which does not exist")
            raise FileNotFoundError(f"{root}: no such file or folder")
        if root.is_file():
            # A file given by name is the user's choice, even through a link: name it by where it was given.
            name = self._root_prefix(root.parent, root.parent.name) + "/" + root.name
            name = name.lstrip("/")
            self.scanned.append(name)
            self._file(root, name, via_link=False)
            return
        prefix = self._root_prefix(root, root.name)
        self.scanned.append(prefix)
        real = _real(root) or Path(os.path.abspath(root))
        self._folder(root, prefix, real, frozenset({real}))

    def _root_prefix(self, folder: Path, folder_name: str) -> str:
        """``""`` for the sources folder, ``sub/dir`` inside it, ``external/<label>`` outside."""
        for given, base in ((Path(os.path.abspath(folder)), Path(os.path.abspath(self.sources_dir))),
                            (_real(folder), self.sources_real)):
            if given is not None and (given == base or base in given.parents):
                relative = given.relative_to(base).as_posix()
                return "" if relative == "." else relative
        full = str(_real(folder) or Path(os.path.abspath(folder)))
        label = folder_name or "root"
        owner = self.labels.get(label)
        if owner is not None and owner != full:
            label = f"{label}-{hashlib.sha256(full.encode()).hexdigest()[:8]}"
        if self.labels.get(label) != full:
            self.labels[label] = full
            self.new_labels[label] = full
        return f"{EXTERNAL}/{label}"

    def _folder(self, folder: Path, prefix: str, boundary: Path, ancestors: frozenset[Path]) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            self.links.append(SkippedLink(prefix or ".", str(folder), f"cannot be read ({exc.strerror})"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            name = f"{prefix}/{entry.name}" if prefix else entry.name
            if name == "README.md" and _real(folder) == self.sources_real:
                continue  # the corpus's own how-to, not a source
            if entry.is_symlink():
                self._link(entry, name, boundary, ancestors)
            elif entry.is_dir():
                real = _real(entry)
                if real is not None:
                    self._folder(entry, name, boundary, ancestors | {real})
            elif entry.is_file():
                self._file(entry, name, via_link=False)

    def _link(self, link: Path, name: str, boundary: Path, ancestors: frozenset[Path]) -> None:
        target = os.readlink(link)
        try:
            real = link.resolve(strict=True)
        except FileNotFoundError:
            self.links.append(SkippedLink(name, target, "points to nothing"))
            return
        except (OSError, RuntimeError):
            self.links.append(SkippedLink(name, target, "is a link loop"))
            return
        inside = real == boundary or boundary in real.parents
        if not inside and not self.follow_external_links:
            self.links.append(SkippedLink(
                name, str(real), f"points outside the folder being indexed (set {ALLOW_SETTING} to index it)"
            ))
            return
        if real.is_dir():
            if real in ancestors:
                self.links.append(SkippedLink(name, target, "is a link loop (it points to a folder above it)"))
                return
            if real in self.walked_links:
                return  # another link already brought this folder in
            self.walked_links.add(real)
            self._folder(link, name, boundary, ancestors | {real})
        elif real.is_file():
            self._file(link, name, via_link=True)

    def _file(self, path: Path, name: str, *, via_link: bool) -> None:
        if not is_supported(path):
            self.unsupported.append(name)
            return
        real = _real(path) or Path(os.path.abspath(path))
        known = self.found.get(real)
        # The same file reached twice (a link to a file that is indexed anyway): one source, named
        # by its own path rather than the link's.
        if known is None or (known.via_link and not via_link):
            self.found[real] = _Found(name, path, via_link)


def _real(path: Path) -> Path | None:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None


@dataclass(frozen=True)
class SkippedLink:
    """A link the run did not follow, and why."""

    name: str
    target: str
    reason: str

    def describe(self) -> str:
        return f"{self.name} -> {self.target}: {self.reason}"


@dataclass(frozen=True)
class Discovery:
    """What a walk found: files by source name, and what it left out."""

    files: dict[str, Path]
    unsupported: list[str]
    links: list[SkippedLink]
    scanned: list[str]
    """The name prefix of each walked root (``""`` for the sources folder)."""
    new_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Found:
    name: str
    path: Path
    via_link: bool
