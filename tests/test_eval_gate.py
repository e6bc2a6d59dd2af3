"""Quality gate: the extractive answerer must stay above the floors in evals/thresholds.toml, on the
default set and on the public dev sets (../shared/evaldata), each indexed into a data dir of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require_evaldata

from evals.cases import load_cases
from evals.compare import check_thresholds, load_thresholds
from evals.runner import HEADLINE, run_set

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ROOT / "evals" / "thresholds.toml"


def _gate(engine, set_path: Path, out: Path) -> None:
    cases = load_cases(set_path)
    summary = run_set(engine, cases, ["extractive"], out, set_path=str(set_path), write_report=False)
    run = summary["runs"]["extractive"]
    assert run["errors"] == 0
    failures = check_thresholds(summary, load_thresholds(FLOORS))
    measured = ", ".join(f"{k} {v:.3f}" for k, v in run["metrics"].items() if v is not None)
    assert not failures, "\n".join(failures) + f"\nmeasured: {measured}"


@pytest.mark.slow
def test_extractive_answerer_meets_the_floors(default_corpus_index, tmp_path):
    _, engine = default_corpus_index
    floors = load_thresholds(FLOORS)
    assert set(floors["default"]["extractive"]) == set(HEADLINE)
    _gate(engine, ROOT / "evals" / "sets" / "default.jsonl", tmp_path / "eval")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hotpotqa-dev", "clapnq-dev"])
def test_extractive_answerer_meets_the_floors_on_public_sets(name, make_settings, embedder, tmp_path):
    from assistant.engine import Engine

    folder = require_evaldata(name)
    assert load_thresholds(FLOORS).get(name, {}).get("extractive"), f"no floors for {name} in {FLOORS}"
    engine = Engine(make_settings(sources_dir=folder / "sources"), embedder)
    report = engine.reindex()
    assert report.ok, report.failed
    _gate(engine, folder / "set.jsonl", tmp_path / "eval")
