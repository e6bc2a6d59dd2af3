"""The MCP server driven by the `mcp` SDK's own client: over stdio (`chokepoint mcp` launched as a subprocess,
as a desktop client launches it) and over Streamable HTTP (`/mcp` on a real `chokepoint serve`, with its token).

Both read one small temporary corpus that `chokepoint index` built beforehand, so no process writes the
index while another reads it. Answers use the extractive answerer (the embedded LLM is slow here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2  # mcp's own HTTP client (the mcp extra brings it)
import pytest
from conftest import _free_port, chokepoint_serve, copy_notes, write_note
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

TOKEN = "mcp-test-token-9d1e"
COPIED = ["cetc-potevio-merger.md", "chip-self-sufficiency-figures.md", "digital-silk-road.md"]
NOTE = "varnholt-foundry.md"
MERGER_Q = "When did SASAC approve the CETC Potevio merger?"
OFF_TOPIC_Q = "What is the recipe for a Neapolitan margherita pizza?"
CHOKEPOINT = Path(sys.executable).with_name("chokepoint")


@dataclass(frozen=True)
class Corpus:
    root: Path
    sources: Path
    data: Path
    env: dict[str, str]
    """What a server process needs: the data dirs, no chokepoint.toml, and an LLM endpoint nothing listens on."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("mcp")
    sources = copy_notes(root / "sources", COPIED)
    write_note(sources, NOTE, "The Varnholt wafer foundry",
               "The Varnholt foundry in Qinghe started producing 28-nanometre wafers in March 2024. "
               "It runs forty immersion lithography scanners bought before the export controls.",
               publisher="Foundry Watch", date="2024-04-02", topics=["semiconductors"])
    env = {"CHOKEPOINT_DATA_DIR": str(root / "data"), "CHOKEPOINT_SOURCES_DIR": str(sources),
           "CHOKEPOINT_ANSWERER": "extractive", "CHOKEPOINT_CONFIG": str(root / "none.toml"),
           "CHOKEPOINT_LLM_URL": f"http://127.0.0.1:{_free_port()}/v1", "CHOKEPOINT_LLM_TIMEOUT_S": "5",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "ANONYMIZED_TELEMETRY": "False"}
    done = subprocess.run([str(CHOKEPOINT), "index", "--json"], cwd=root, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(json.loads(done.stdout)["added"]) == sorted([*COPIED, NOTE])
    return Corpus(root, sources, root / "data", env)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _run(check: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(check)


def _text(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


async def _exercise(session: ClientSession) -> dict[str, Any]:
    """What every transport must do: list, search, ask (answered and refused), read the status."""
    await session.initialize()
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    found = await session.call_tool("search", {"query": "Varnholt foundry wafers", "k": 3})
    filtered = await session.call_tool("search", {"query": "wafers", "source": [NOTE], "date_from": "2024"})
    answered = await session.call_tool("ask", {"question": MERGER_Q})
    refused = await session.call_tool("ask", {"question": OFF_TOPIC_Q, "answerer": "extractive"})
    bad_k = await session.call_tool("search", {"query": "wafers", "k": 0})
    dead_llm = await session.call_tool("ask", {"question": MERGER_Q, "answerer": "llm"})
    status = await session.read_resource("chokepoint://status")
    return {"tools": tools, "found": found, "filtered": filtered, "answered": answered, "refused": refused,
            "bad_k": bad_k, "dead_llm": dead_llm, "status": status}


def _check(results: dict[str, Any], corpus: Corpus) -> None:
    tools = results["tools"]
    assert {"search", "ask"} <= tools.keys()
    assert {"query", "k", "source", "publisher", "topic", "date_from", "date_to"} <= \
        tools["search"].input_schema["properties"].keys()
    assert {"question", "answerer"} <= tools["ask"].input_schema["properties"].keys()

    found = results["found"]
    assert not found.is_error, _text(found)
    top = found.structured_content["passages"][0]
    assert top["source"] == NOTE and top["title"] == "The Varnholt wafer foundry"
    assert {"score", "text", "start", "end"} <= top.keys() and "28-nanometre" in top["text"]
    # The span is where the passage's text sits in the source file.
    assert (corpus.sources / NOTE).read_text()[top["start"]:top["end"]].strip() == top["text"].strip()
    assert {p["source"] for p in results["filtered"].structured_content["passages"]} == {NOTE}

    answered = results["answered"]
    assert not answered.is_error, _text(answered)
    body = answered.structured_content
    assert body["refused"] is False and body["refusal_reason"] == "" and "[1]" in body["answer"]
    citation = body["citations"][0]
    assert citation["n"] == 1 and citation["source"] == "cetc-potevio-merger.md" and citation["title"]
    assert {"url", "page", "quote", "start", "end"} <= citation.keys()
    source_text = " ".join((corpus.sources / citation["source"]).read_text().split())
    assert " ".join(citation["quote"].split()) in source_text
    assert "[1]" in _text(answered) and "**Sources**" in _text(answered)

    refused = results["refused"]
    assert not refused.is_error, _text(refused)
    assert refused.structured_content["refused"] is True and refused.structured_content["refusal_reason"]
    assert refused.structured_content["citations"] == []

    # A bad argument is a tool error that says what is allowed, not a crash.
    assert results["bad_k"].is_error and "between 1 and" in _text(results["bad_k"])
    assert results["dead_llm"].is_error and "answerer 'extractive'" in _text(results["dead_llm"])

    status = json.loads(results["status"].contents[0].text)
    assert status["sources"] == len(COPIED) + 1 and status["chunks"] > 0
    assert Path(status["data_dir"]).resolve() == corpus.data.resolve()


# --- stdio -------------------------------------------------------------------------------------------

def test_stdio_client_lists_searches_asks_and_reads_status(corpus: Corpus) -> None:
    params = StdioServerParameters(
        command=str(CHOKEPOINT), args=["--data-dir", str(corpus.data), "--sources-dir", str(corpus.sources), "mcp"],
        env={k: v for k, v in corpus.env.items() if not k.endswith("_DIR")}, cwd=str(corpus.root))
    log = (corpus.root / "stdio.log").open("w")

    async def check() -> dict[str, Any]:
        async with stdio_client(params, errlog=log) as (read, write), ClientSession(read, write) as session:
            return await _exercise(session)

    try:
        results = _run(check)
    finally:
        log.close()
    _check(results, corpus)


def test_stdio_says_how_to_fix_a_missing_data_dir(corpus: Corpus, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    done = subprocess.run([str(CHOKEPOINT), "--data-dir", str(blocked / "data"), "mcp"], cwd=corpus.root,
                          env={**os.environ, **corpus.env}, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("chokepoint: error:") and len(done.stderr.strip().splitlines()) == 1


# --- Streamable HTTP on `chokepoint serve` -----------------------------------------------------------

@pytest.fixture(scope="module")
def server(corpus: Corpus) -> str:
    env = {**os.environ, **corpus.env, "CHOKEPOINT_API_TOKEN": TOKEN}
    with chokepoint_serve(corpus.root, env, TOKEN) as url:
        yield url


def test_streamable_http_client_with_the_token(corpus: Corpus, server: str) -> None:
    async def check() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
                    streamable_http_client(f"{server}/mcp", http_client=http) as (read, write),
                    ClientSession(read, write) as session):
            return await _exercise(session)

    _check(_run(check), corpus)


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_streamable_http_without_the_token_is_refused(server: str, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def check() -> None:
        async with (httpx2.AsyncClient(headers=headers, timeout=30) as http,
                    streamable_http_client(f"{server}/mcp", http_client=http) as (read, write),
                    ClientSession(read, write) as session):
            await session.initialize()

    # The SDK's client cannot even initialize: the refused POST is an MCPError inside its task groups.
    with pytest.raises(BaseException) as caught:
        _run(check)
    assert any(isinstance(exc, MCPError) for exc in _leaves(caught.value)), caught.value
    # The refusal itself, as a plain client sees it: a 401 that names the setting.
    raw = httpx.post(f"{server}/mcp", headers={**headers, "Accept": "application/json, text/event-stream"},
                     json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
    assert raw.status_code == 401 and "CHOKEPOINT_API_TOKEN" in raw.json()["error"]["message"]
