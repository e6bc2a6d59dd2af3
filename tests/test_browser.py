"""The real app in a real browser: `streamlit run app.py` driven by Debian's chromium through Playwright.

Chromium comes from apt (``scripts/ensure-chromium``), not from Playwright's own download. The test
is skipped only when chromium cannot be installed outside CI; in CI (``CI`` set) that is a failure.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, clone_index

from benchmarks.common import stop

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
CHIP_QUESTION = "How much of its chip demand did China produce in 2020?"
HOSTILE_NOTE = """---
title: Hostile test note
publisher: Browser Test
---

# Hostile test note

<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> [press here](javascript:window.__pwned=3)

The Quibbleton foundry reported a yield of 81.3% for its test wafers in 2019, according to this hostile note.
"""


def _unavailable(reason: str) -> None:
    """Skip outside CI; in CI a missing browser is a failure, never a silent skip."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    script = ROOT / "scripts" / "ensure-chromium"
    try:
        result = subprocess.run([str(script)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/ensure-chromium did not run: {exc}")
    if result.returncode != 0 or not Path(CHROMIUM).exists():
        _unavailable(f"chromium could not be installed: {(result.stderr or result.stdout).strip()[-500:]}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"the playwright package is missing ({exc}); pip install -e '.[dev]'")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"streamlit did not start in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def app_url(chromium: str, tmp_path_factory: pytest.TempPathFactory, default_corpus_template: Path) -> Iterator[str]:
    """The app on a free local port, over a temporary data dir indexed from the default corpus
    (a copy of the indexed corpus; `chokepoint index` adds the hostile note to it)."""
    sources, data = clone_index(default_corpus_template, tmp_path_factory.mktemp("browser"))
    (sources / "hostile-note.md").write_text(HOSTILE_NOTE, encoding="utf-8")
    env = {
        **os.environ,
        "CHOKEPOINT_DATA_DIR": str(data),
        "CHOKEPOINT_SOURCES_DIR": str(sources),
        "CHOKEPOINT_ANSWERER": "extractive",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ANONYMIZED_TELEMETRY": "False",
    }
    env.pop("CHOKEPOINT_LLM_URL", None)
    indexed = subprocess.run([sys.executable, "-m", "cli", "index"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)
    assert indexed.returncode == 0, indexed.stdout + indexed.stderr

    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "streamlit-server.log"
    port = _free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        stop(process, timeout=20)


@pytest.fixture
def page(chromium: str, app_url: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1400})
            page = context.new_page()
            page.goto(app_url, wait_until="domcontentloaded")
            yield page
        finally:
            browser.close()


def _ask(page, question: str):
    from playwright.sync_api import expect

    box = page.get_by_test_id("stChatInputTextArea")
    expect(box).to_be_enabled(timeout=120_000)
    before = page.get_by_test_id("stChatMessage").count()
    box.fill(question)
    box.press("Enter")
    messages = page.get_by_test_id("stChatMessage")
    expect(messages).to_have_count(before + 2, timeout=120_000)
    answer = messages.nth(before + 1)
    # The verified answer is in once its copy-as-Markdown view is there (it is drawn last).
    expect(answer.get_by_test_id("stExpander").filter(has_text="Copy as Markdown")).to_be_visible(timeout=120_000)
    page.wait_for_timeout(300)
    return answer


def test_browser_answer_citation_and_refusal(page):
    from playwright.sync_api import expect

    expect(page.get_by_text("Chokepoint", exact=True).first).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("stSidebar")).to_contain_text("Embedding model", timeout=120_000)

    answer = _ask(page, CHIP_QUESTION)
    expect(answer).to_contain_text("15.9%")
    expect(answer).to_contain_text("[1]")
    card = answer.get_by_test_id("stExpander").filter(has_text="[1]").first
    expect(card).to_be_visible()
    highlight = card.locator(".stMarkdownColoredBackground")
    expect(highlight.first).to_be_hidden()
    card.locator("summary").click()
    expect(highlight.first).to_be_visible()
    assert "15.9%" in " ".join(highlight.all_inner_texts())  # the supporting span, one piece per line
    expect(card).to_contain_text("Publisher:")
    expect(card.locator("a[href^='https://']").first).to_be_visible()
    page.wait_for_timeout(500)  # the expander's opening animation
    page.get_by_test_id("stChatMessage").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ARTIFACTS / "answer-with-citation.png"), full_page=True)

    # The whole source, with the span highlighted in place.
    card.get_by_text("Show the whole source").click()
    whole = card.locator("[class*='st-key-whole-source-']")
    expect(whole).to_contain_text("IC Insights", timeout=30_000)
    expect(whole.locator(".stMarkdownColoredBackground").first).to_be_visible()
    whole.locator(".stMarkdownColoredBackground").last.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "whole-source.png"), full_page=True)

    refusal = _ask(page, "What is the capital of France?")
    expect(refusal).to_contain_text("The indexed sources do not cover this question.")
    expect(refusal).to_contain_text("nearest passages")
    refusal.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ARTIFACTS / "refusal.png"), full_page=True)


def test_browser_shows_hostile_source_as_text(page):
    from playwright.sync_api import expect

    answer = _ask(page, "What yield did the Quibbleton foundry report for its test wafers in 2019?")
    expect(answer).to_contain_text("81.3%")
    card = answer.get_by_test_id("stExpander").filter(has_text="Hostile test note").first
    card.locator("summary").click()
    expect(card).to_contain_text("<script>window.__pwned = 1</script>")
    page.wait_for_timeout(500)
    expect(card).to_contain_text("[press here](javascript:window.__pwned=3)")
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(ARTIFACTS / "hostile-source.png"), full_page=True)
