"""App benchmark: the real Streamlit app in headless Chromium, from page open to the first and second answer.

    python benchmarks/bench_app.py [--runs 5] [--warmup 1] [--app PATH/app.py ...] [--out FILE]

The default corpus (``sources/`` of the app's folder) is indexed once, before anything is timed, into a
temporary data dir (``chokepoint index`` of the app's code), so only the app's own start is measured: above
all the engine load (embedding model, store), which happens once per server process. Each run then starts a
fresh ``streamlit run app.py`` on a free port over a copy of that data dir (extractive answerer, offline),
and opens the page in Debian's chromium (``/usr/bin/chromium``, ``scripts/ensure-chromium``) through
Playwright, as ``tests/test_browser.py`` does. Three figures a run, all taken in the browser
(``performance.now()``, polled each animation frame):
- page shown: from navigation start until the chat input is visible;
- first answer: the first question is typed as soon as the input is visible (``--think S``: S seconds later);
  from the Enter key until the answer is drawn with its citation cards, its "Copy as Markdown" view and
  the timing caption under it;
- second answer: a second question in the same page, the same way (the warm figure).
Also navigation start to first answer (page shown + typing + first answer), the wait a user sees.

``--app`` runs another checkout's app (for a before/after): its folder is the server's working directory
and goes first on its ``PYTHONPATH``, and its ``sources/`` are indexed with its own code. Given twice or
more, the checkouts' runs alternate (one run each, in turn), so a shared machine's changing load falls on
each alike.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, load_average, stop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
FIRST = "selfsuff-2020-01"  # What share of China's chip demand was met by chips made in China in 2020?
SECOND = "bigfund-phase3-01"  # When was Big Fund phase III established and what is its registered capital?
TIMEOUT_MS = 300_000
TIMING = re.compile(r"answerer · ([0-9.]+) s")  # the answer's own caption: the pipeline's time, to 0.1 s

# Recorded in the page from its first script on: the moment Enter is pressed in the chat input.
ENTER_HOOK = """
document.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && event.target && event.target.dataset
      && event.target.dataset.testid === 'stChatInputTextArea') window.__enterAt = performance.now();
}, true);
"""
INPUT_SHOWN = """() => {
  const box = document.querySelector('[data-testid="stChatInputTextArea"]');
  return box && box.getClientRects().length > 0 ? performance.now() : false;
}"""
# The n-th chat message (1-based) is an answer drawn whole: a citation card, "Copy as Markdown" and the
# timing caption below it ("extractive answerer · 0.2 s").
ANSWER_SHOWN = """(n) => {
  const message = document.querySelectorAll('[data-testid="stChatMessage"]')[n - 1];
  if (!message) return false;
  const labels = [...message.querySelectorAll('[data-testid="stExpander"] summary')].map((s) => s.textContent);
  if (!labels.some((t) => t.includes('[1]')) || !labels.some((t) => t.includes('Copy as Markdown'))) return false;
  return /answerer · [0-9.]+ s/.test(message.textContent) ? performance.now() : false;
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_env(app_dir: Path, folder: Path) -> dict[str, str]:
    env = {**os.environ, "CHOKEPOINT_DATA_DIR": str(folder / "data"), "CHOKEPOINT_SOURCES_DIR": str(folder / "sources"),
           "CHOKEPOINT_CONFIG": str(folder / "none.toml"), "CHOKEPOINT_ANSWERER": "extractive",
           "PYTHONPATH": os.pathsep.join(p for p in (str(app_dir), os.environ.get("PYTHONPATH")) if p)}
    env.pop("CHOKEPOINT_LLM_URL", None)
    return env


def build_index(app_dir: Path, folder: Path) -> None:
    shutil.copytree(app_dir / "sources", folder / "sources")
    indexed = subprocess.run([sys.executable, "-m", "assistant.cli", "index"], cwd=app_dir,
                             env=app_env(app_dir, folder), capture_output=True, text=True, timeout=1800)
    if indexed.returncode != 0:
        raise SystemExit(f"chokepoint index failed:\n{indexed.stdout}{indexed.stderr}")


def start_app(app: Path, folder: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=app.parent, env=app_env(app.parent, folder), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"streamlit did not start:\n{log.read_text()[-3000:]}")


def ask(page: Any, question: str) -> tuple[float, str]:
    """Type the question, press Enter; seconds from the key press until the answer is drawn, and its text.

    The time is the browser's (``performance.now()`` at the key press, and at the first animation frame with
    the answer drawn), so Playwright's own round trips are not in it.
    """
    box = page.get_by_test_id("stChatInputTextArea")
    asked = page.get_by_test_id("stChatMessage").count()
    box.fill(question)
    box.press("Enter")
    done = page.wait_for_function(ANSWER_SHOWN, arg=asked + 2, polling="raf", timeout=TIMEOUT_MS).json_value()
    pressed = page.evaluate("window.__enterAt")
    text = page.get_by_test_id("stChatMessage").nth(asked + 1).inner_text()
    return (done - pressed) / 1000, text


def pipeline_seconds(text: str) -> float | None:
    found = TIMING.search(text)
    return float(found.group(1)) if found else None


def one_run(browser: Any, app: Path, pristine: Path, folder: Path, questions: list[dict],
            think: float) -> dict[str, Any]:
    """A fresh app process over a fresh copy of the indexed data dir, and a fresh browser context."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(pristine, folder, symlinks=True)
    process, url = start_app(app, folder, folder / "streamlit.log")
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        try:
            page = context.new_page()
            page.add_init_script(ENTER_HOOK)
            page.goto(url, wait_until="commit")
            shown = page.wait_for_function(INPUT_SHOWN, polling="raf", timeout=TIMEOUT_MS).json_value() / 1000
            if think:
                page.wait_for_timeout(1000 * think)
            first, first_text = ask(page, questions[0]["question"])
            typed = page.evaluate("window.__enterAt") / 1000 - shown
            second, second_text = ask(page, questions[1]["question"])
        finally:
            context.close()
    finally:
        stop(process)
    return {
        "page_shown_s": round(shown, 3), "typing_s": round(typed, 3), "first_answer_s": round(first, 3),
        "navigation_to_first_answer_s": round(shown + typed + first, 3), "second_answer_s": round(second, 3),
        "first_pipeline_s": pipeline_seconds(first_text), "second_pipeline_s": pipeline_seconds(second_text),
        "first_answer_text": first_text[:300], "second_answer_text": second_text[:300],
        "first_key_facts": all(f in first_text for f in questions[0]["key_facts"]),
        "second_key_facts": all(f in second_text for f in questions[1]["key_facts"]),
        "load_average": load_average(),
    }


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_s": round(statistics.median(samples), 2), "min_s": round(min(samples), 2),
            "max_s": round(max(samples), 2), "n": len(samples)}


def git_commit(folder: Path) -> str | None:
    found = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs, each a fresh app process (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs first, so the OS file cache holds the model and libraries (default 1)")
    parser.add_argument("--app", type=Path, action="append",
                        help="the app file to run (default this checkout's app.py); its folder is the server's "
                        "working directory and first on its PYTHONPATH. Repeat it to compare checkouts: their runs "
                        "alternate, so a change in the machine's load falls on each alike")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds between the input showing and the first question being typed, a user reading "
                        "the page (default 0: typed at once)")
    parser.add_argument("--first", default=FIRST, help=f"id in evals/sets/default.jsonl of the first question "
                        f"(default {FIRST}, extractive, answerable)")
    parser.add_argument("--second", default=SECOND, help=f"id of the second question (default {SECOND})")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser executable (default {CHROMIUM})")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "app.json",
                        help="the JSON written (default benchmarks/out/app.json)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    apps = [a.resolve() for a in args.app or [ROOT / "app.py"]]
    cases = {c["id"]: c for c in map(json.loads, (ROOT / "evals/sets/default.jsonl").read_text().splitlines())}
    questions = [cases[args.first], cases[args.second]]
    load_before = load_average()
    runs: list[list[dict[str, Any]]] = [[] for _ in apps]
    with tempfile.TemporaryDirectory() as tmp:
        indexed = [Path(tmp) / f"indexed-{n}" for n in range(len(apps))]
        for app, pristine in zip(apps, indexed, strict=True):
            started = time.perf_counter()
            build_index(app.parent, pristine)
            print(f"indexed {app.parent / 'sources'} in {time.perf_counter() - started:.0f} s", flush=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                for n in range(args.warmup + args.runs):
                    for k, (app, pristine) in enumerate(zip(apps, indexed, strict=True)):
                        run = one_run(browser, app, pristine, Path(tmp) / "run", questions, args.think)
                        label = "warm-up" if n < args.warmup else f"run {n - args.warmup + 1}"
                        brief = {key: v for key, v in run.items() if not key.endswith("_text")}
                        print(f"{app} {label}: {json.dumps(brief)}", flush=True)
                        if n >= args.warmup:
                            runs[k].append(run)
            finally:
                browser.close()
    figures = ("page_shown_s", "first_answer_s", "navigation_to_first_answer_s", "second_answer_s", "typing_s")
    results = [{
        "app": str(app), "commit": git_commit(app.parent), "runs": own,
        **{name: summary([r[name] for r in own]) for name in figures},
        "key_facts_shown": f"{sum(r['first_key_facts'] for r in own)}/{len(own)} first, "
                           f"{sum(r['second_key_facts'] for r in own)}/{len(own)} second",
    } for app, own in zip(apps, runs, strict=True)]
    result = {
        "apps": results, "first_question": questions[0]["question"], "second_question": questions[1]["question"],
        "warmup": args.warmup, "think_s": args.think, "machine": f"{os.cpu_count()} cores",
        "load_average_before": load_before, "load_average_after": load_average(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for own in results:
        print(f"{own['app']} ({own['commit']}), key facts shown: {own['key_facts_shown']}")
        for name in figures:
            s = own[name]
            print(f"  {name:30} p50 {s['p50_s']:6.2f} s   {s['min_s']:.2f}-{s['max_s']:.2f}")
    print(f"load average before {load_before}, after {result['load_average_after']}; written to {args.out}")

if __name__ == "__main__":
    main()
