"""Shared fixtures: one real embedding model per test session, temporary data dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from benchmarks.common import stop

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

    from assistant.engine import Engine
    from index.embedding import Embedder
    from index.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: torch's two threads each (and the servers the tests start, which inherit
    # this) would put four spinning threads on two cores; one each keeps both cores busy without that.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]

# The eval gate's runs are independent of one another and long: each may go to either worker.
_SPREAD_FILES = {"test_eval_gate"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (``make test``: ``-n 2 --dist loadgroup``) a file's tests stay on one worker, in their
    order: they share module fixtures (an indexed corpus, a started server) and the process's one
    embedded LLM server, which a test of another file asking other settings would restart under them.

    A test that runs the embedded LLM (its fixtures assemble the model files) is marked serial: llama.cpp's
    threads wait on each other at every layer, and beside a busy worker the sample's eval took 838 s
    instead of 260 s alone (measured for #27)."""
    xdist = config.pluginmanager.hasplugin("xdist")
    for item in items:
        if _RUNS_THE_LLM in getattr(item, "fixturenames", ()) and item.get_closest_marker("serial") is None:
            item.add_marker(pytest.mark.serial)
        if xdist and item.get_closest_marker("xdist_group") is None:  # `-p no:xdist` knows no such marker
            module = item.module.__name__ if item.module is not None else item.nodeid
            group = item.nodeid if module in _SPREAD_FILES else module
            item.add_marker(pytest.mark.xdist_group(group))


_RUNS_THE_LLM = "shared_models_dir"


SOURCES = ROOT / "sources"
SHARED = ROOT.parent / "shared"
SEEDS = SHARED / "seeds"


@pytest.fixture(scope="session")
def embedder():
    from index.embedding import Embedder

    return Embedder()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., object]:
    """Settings for a fresh data dir and sources dir under tmp_path."""
    from index.settings import Settings

    def make(**overrides: object) -> Settings:
        values = {"data_dir": tmp_path / "data", "sources_dir": tmp_path / "sources"}
        values.update(overrides)
        Path(values["sources_dir"]).mkdir(parents=True, exist_ok=True)
        return Settings(**values)

    return make


def write_note(folder: Path, name: str, title: str, body: str, **front: object) -> Path:
    """A Markdown source with front matter, as a user would drop it in."""
    import yaml

    meta = {"title": title, **front}
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# {title}\n\n{body}\n", encoding="utf-8")
    return path


def copy_notes(folder: Path, names: Iterable[str] | None = None) -> Path:
    """Notes of the default corpus (all its ``*.md`` when ``names`` is None) copied into ``folder``; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(SOURCES.glob("*.md")) if names is None else [SOURCES / name for name in names]
    for path in paths:
        shutil.copy(path, folder / path.name)  # not copy2: a fresh mtime, as a file a user drops in has
    return folder


def indexed_engine(settings: Settings, embedder: Embedder) -> Engine:
    """An Engine on ``settings`` whose first reindex succeeded."""
    from assistant.engine import Engine

    engine = Engine(settings, embedder)
    report = engine.reindex()
    assert report.ok, report.failed
    return engine


@contextmanager
def app_environment(**env: str) -> Iterator[None]:
    """The app's environment (CHOKEPOINT_* variables, all others of them unset), with Streamlit's caches
    cleared before and after: the app must build its engine from this environment, not reuse one."""
    import streamlit as st

    patch = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("CHOKEPOINT_")]:
        patch.delenv(key)
    for key, value in env.items():
        patch.setenv(f"CHOKEPOINT_{key.upper()}", value)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        yield
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
        patch.undo()


def new_app() -> AppTest:
    """``app.py`` in Streamlit's AppTest, after a first run that raised nothing."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="session")
def default_corpus_template(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """The default corpus copied and indexed once per test session (per worker under xdist): a folder
    with ``sources/`` and ``data/`` that tests never use in place, only copy (``clone_index``)."""
    from assistant.engine import _forget_embedded_chroma
    from index.indexer import Indexer
    from index.settings import Settings

    root = tmp_path_factory.mktemp("default-template")
    settings = Settings(data_dir=root / "data", sources_dir=copy_notes(root / "sources"))
    report = Indexer(settings, embedder).run()
    assert report.ok and report.added, report.failed
    _forget_embedded_chroma(settings.chroma_dir)  # nothing of this process keeps the files open
    return root


def clone_index(template: Path, target: Path) -> tuple[Path, Path]:
    """A copy of an indexed folder's ``sources/`` and ``data/`` under ``target``: (sources, data).

    As good as indexing the copy: the manifest names files relative to the sources folder, and copy2
    keeps their mtimes, so the next indexing run finds every file unchanged."""
    target.mkdir(parents=True, exist_ok=True)
    sources = Path(shutil.copytree(template / "sources", target / "sources", dirs_exist_ok=True))
    data = Path(shutil.copytree(template / "data", target / "data"))
    return sources, data


@pytest.fixture(scope="session")
def default_corpus_index(tmp_path_factory: pytest.TempPathFactory, default_corpus_template: Path, embedder):
    """The default corpus indexed, shared by the tests that only read it: (settings, engine)."""
    from assistant.engine import Engine
    from index.settings import Settings

    sources, data = clone_index(default_corpus_template, tmp_path_factory.mktemp("default-index"))
    settings = Settings(data_dir=data, sources_dir=sources)
    return settings, Engine(settings, embedder)


@pytest.fixture
def default_corpus_copy(default_corpus_template: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A test's own indexed copy of the default corpus, to write to: (sources, data)."""
    return clone_index(default_corpus_template, tmp_path / "default-copy")


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the embedded LLM's assembled model file, shared by the LLM tests' data dirs
    (``Settings.llm_models_dir``): the model is assembled once, and one server serves them all."""
    return tmp_path_factory.mktemp("llm-models")


def copy_seeds(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(p, target / p.name)) for p in sorted(SEEDS.glob("*.txt"))]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `chroma run` server on a free port with its data in a temp dir; yields its URL.

    Stopped with SIGTERM (as an operator would) in the finalizer, whatever the tests did.
    """
    import sys
    import time
    import urllib.request

    chroma = Path(sys.executable).with_name("chroma")
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    for _ in range(3):  # the free port may be taken between probing and binding
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([str(chroma), "run", "--path", str(path / "db"), "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        ready = False
        while not ready and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                    ready = True
            except OSError:
                time.sleep(0.1)
        if ready:
            break
        server.kill()
        server.wait()
    else:
        log.close()
        pytest.fail(f"chroma run did not start: {(path / 'server.log').read_text()[-2000:]}")
    try:
        yield url
    finally:
        stop(server, timeout=15)
        log.close()


@contextmanager
def local_http_server(handler: type) -> Iterator[str]:
    """A real threaded HTTP server on a free loopback port, answering with ``handler``; yields its base URL."""
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chokepoint_serve(root: Path, env: dict[str, str], token: str) -> Iterator[str]:
    """A real `chokepoint serve` on a free port, run in ``root`` with ``env``; yields its URL once it answers
    ``/v1/models`` with ``token``, and stops it with SIGTERM afterwards. Its output goes to ``root/serve.log``."""
    import sys
    import time

    import httpx

    chokepoint = Path(sys.executable).with_name("chokepoint")
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        for _ in range(3):  # the free port may be taken between probing and binding
            url = f"http://127.0.0.1:{_free_port()}"
            process = subprocess.Popen([str(chokepoint), "serve", "--port", url.rsplit(":", 1)[1]], cwd=root,
                                       env=env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 180
            ready = False
            while not ready and time.monotonic() < deadline and process.poll() is None:
                try:
                    ready = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {token}"},
                                      timeout=2).status_code == 200
                except httpx.HTTPError:
                    time.sleep(0.2)
            if ready:
                break
            stop(process, timeout=10)
        else:
            pytest.fail(f"chokepoint serve did not start: {log_path.read_text()[-3000:]}")
        try:
            yield url
        finally:
            stop(process, timeout=15)


def require_llm(size: str = "0.5b") -> None:
    """Skip a test of the embedded LLM when its packages are missing; in CI (``CI`` set) fail instead,
    so that a missing model never passes for a green run of skipped tests."""
    import importlib.util

    from assistant.llm.gguf_model import spec_for

    spec = spec_for(size)
    needed = ["xllamacpp", *(spec.module_name(i) for i in range(1, spec.parts + 1))]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if not missing:
        return
    extra = "llm-small" if size == "0.5b" else "llm"
    reason = f"the {size} LLM needs {', '.join(missing)} (pip install -e '.[{extra}]')"
    if os.environ.get("CI"):
        pytest.fail(f"LLM test cannot run in CI: {reason}")
    pytest.skip(reason)


EVALDATA = SHARED / "evaldata"


def require_evaldata(name: str) -> Path:
    """The public dev set folder ``../shared/evaldata/<name>``. Skip when it is absent; in CI (``CI`` set)
    fail instead: a gate that skips its public sets would pass without measuring them."""
    folder = EVALDATA / name
    if (folder / "set.jsonl").is_file() and (folder / "sources").is_dir():
        return folder
    reason = f"{folder} is missing: put the shared eval data beside the project"
    if os.environ.get("CI"):
        pytest.fail(f"eval test cannot run in CI: {reason}")
    pytest.skip(reason)
