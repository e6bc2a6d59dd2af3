"""`chokepoint ask` answers through a running `chokepoint serve` over the same index, and only then.

A real server subprocess over a small temporary corpus (it indexes it itself through POST /v1/index),
and `chokepoint ask` run as the user runs it, as a subprocess with the environment pointing at it.
Whether an answer came through the server is read from `--json`'s `via`, never from timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import _free_port, chokepoint_serve, copy_notes

TOKEN = "cli-token-7d1e"
FILES = ["chip-self-sufficiency-figures.md", "cetc-potevio-merger.md", "dram-memory-push.md"]
CHIP_Q = "How much of its chip demand did China produce in 2020?"
CHOKEPOINT = Path(sys.executable).with_name("chokepoint")
LOCALLY = "chokepoint: answering locally: "


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("cli-server")
    sources = copy_notes(root / "sources", FILES)
    env = _env(root, {"CHOKEPOINT_DATA_DIR": str(root / "data"), "CHOKEPOINT_SOURCES_DIR": str(sources),
                      "CHOKEPOINT_API_TOKEN": TOKEN})
    with chokepoint_serve(root, env, TOKEN) as url:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        report = httpx.post(f"{url}/v1/index", headers=auth, json={}, timeout=300).json()
        assert sorted(report["added"]) == sorted(FILES), report
        yield Served(root, url, int(url.rsplit(":", 1)[1]), env)


def _env(root: Path, values: dict[str, str]) -> dict[str, str]:
    # The developer's own CHOKEPOINT_* (a server URL, a token) must not decide what these tests see.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOKEPOINT_")}
    return {**env, "CHOKEPOINT_ANSWERER": "extractive", "CHOKEPOINT_CONFIG": str(root / "none.toml"),
            "CHOKEPOINT_API_PORT": str(_free_port()),  # nothing listens there: no default server to find
            "HF_HUB_OFFLINE": "1", **values}


def ask(served: Served, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(CHOKEPOINT), "ask", CHIP_Q, *args], cwd=served.root, env={**served.env, **env},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def reasons(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(LOCALLY)]


def test_same_data_dir_is_answered_by_the_server(served):
    result = ask(served, "--json", CHOKEPOINT_SERVER_URL=f"{served.url}/v1")
    answer = json.loads(result.stdout)
    assert answer["via"] == "server" and not reasons(result)
    assert not answer["refused"] and "15.9%" in answer["answer"]
    assert answer["citations"][0]["source"] == "chip-self-sufficiency-figures.md"
    assert answer["citations"][0]["supporting_text"] in answer["citations"][0]["text"]
    # Filters and -k travel as the API's body fields.
    only = json.loads(ask(served, "--json", "-k", "2", "--source", "dram-memory-push.md",
                          CHOKEPOINT_SERVER_URL=served.url).stdout)
    assert only["via"] == "server" and len(only["passages"]) <= 2
    assert {p["source"] for p in only["passages"]} <= {"dram-memory-push.md"}


def test_the_default_address_is_found_without_a_url(served):
    result = ask(served, "--json", CHOKEPOINT_API_PORT=str(served.port))
    assert json.loads(result.stdout)["via"] == "server" and not reasons(result)


def test_without_a_server_it_answers_locally_without_a_word_and_prints_the_same(served):
    through_server = ask(served, CHOKEPOINT_SERVER_URL=served.url)
    local = ask(served)  # the default address has nothing listening
    assert not reasons(local)
    assert local.stdout == through_server.stdout
    assert "15.9%" in local.stdout and "\nSources:\n  [1] " in local.stdout


def test_the_sources_list_names_the_report_each_quote_cites(served):
    """A journalist copying a figure from the terminal needs the outlet the quoted block cites, not
    only the note it stands in."""
    cited = json.loads(ask(served, "--json").stdout)["citations"]
    text = ask(served).stdout
    assert cited and all(c["reports"] for c in cited)
    for report in [r for c in cited for r in c["reports"]]:
        assert report["publisher"] in text, report
        assert not report["url"] or f"<{report['url']}>" in text, report


def test_another_data_dir_is_answered_locally_and_says_why(served):
    other = served.root / "other-data"
    result = ask(served, "--json", CHOKEPOINT_SERVER_URL=served.url, CHOKEPOINT_DATA_DIR=str(other))
    assert json.loads(result.stdout)["via"] == "local"
    [reason] = reasons(result)
    assert f"serves {(served.root / 'data').resolve()}, not {other.resolve()}" in reason


def test_a_wrong_token_is_answered_locally_and_says_why(served):
    result = ask(served, "--json", CHOKEPOINT_SERVER_URL=served.url, CHOKEPOINT_API_TOKEN="not-the-token")
    answer = json.loads(result.stdout)
    assert answer["via"] == "local" and "15.9%" in answer["answer"]
    [reason] = reasons(result)
    assert served.url in reason and "CHOKEPOINT_API_TOKEN" in reason


def test_no_server_at_the_url_is_answered_locally_and_says_why(served):
    url = f"http://127.0.0.1:{_free_port()}"
    result = ask(served, "--json", CHOKEPOINT_SERVER_URL=url)
    assert json.loads(result.stdout)["via"] == "local"
    [reason] = reasons(result)
    assert f"no server answers at {url}" in reason


def test_local_flag_answers_locally_even_with_a_server(served):
    result = ask(served, "--json", "--local", CHOKEPOINT_SERVER_URL=served.url)
    assert json.loads(result.stdout)["via"] == "local" and not reasons(result)


@dataclass(frozen=True)
class Served:
    """A running `chokepoint serve` and the environment that points `chokepoint ask` at its index."""

    root: Path
    url: str
    port: int
    env: dict[str, str]
