"""Quality gate: the extractive answerer on the default set must stay above the floors in evals/thresholds.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.cases import load_cases
from evals.compare import check_thresholds, load_thresholds
from evals.runner import HEADLINE, run_set

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_extractive_answerer_meets_the_floors(default_corpus_index, tmp_path):
    _, engine = default_corpus_index
    floors = load_thresholds(ROOT / "evals" / "thresholds.toml")
    assert set(floors["extractive"]) == set(HEADLINE)
    cases = load_cases(ROOT / "evals" / "sets" / "default.jsonl")
    summary = run_set(engine, cases, ["extractive"], tmp_path / "eval", set_path="evals/sets/default.jsonl",
                      write_report=False)
    run = summary["runs"]["extractive"]
    assert run["errors"] == 0
    failures = check_thresholds(summary, floors)
    measured = ", ".join(f"{k} {run['metrics'][k]:.3f}" for k in HEADLINE)
    assert not failures, "\n".join(failures) + f"\nmeasured: {measured}"
