"""Quality gate: the answerers must stay above the floors in evals/thresholds.toml: the extractive one on
the default set and on the public dev sets (../shared/evaldata), each indexed into a data dir of its own,
and the embedded 0.5B LLM on the sample cut of the default set."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import indexed_engine, require_evaldata, require_llm

from evals.cases import load_cases
from evals.compare import check_thresholds, load_thresholds
from evals.metrics import HEADLINE
from evals.runner import run_set

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ROOT / "evals" / "thresholds.toml"


def _gate(engine, set_path: Path, out: Path, answerer: str = "extractive") -> None:
    cases = load_cases(set_path)
    summary = run_set(engine, cases, [answerer], out, set_path=str(set_path), write_report=False)
    run = summary["runs"][answerer]
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
    folder = require_evaldata(name)
    assert load_thresholds(FLOORS).get(name, {}).get("extractive"), f"no floors for {name} in {FLOORS}"
    engine = indexed_engine(make_settings(sources_dir=folder / "sources"), embedder)
    _gate(engine, folder / "set.jsonl", tmp_path / "eval")


@pytest.mark.slow
def test_llm_answerer_meets_the_floors_on_the_sample(default_corpus_index, shared_models_dir, embedder, tmp_path):
    from assistant.engine import Engine

    require_llm("0.5b")  # skipped without the llm-small extra, failed in CI
    settings, _ = default_corpus_index
    assert set(load_thresholds(FLOORS)["sample"]["llm"]) == set(HEADLINE)
    engine = Engine(settings.model_copy(update={"llm_size": "0.5b", "llm_models_dir": shared_models_dir}), embedder)
    _gate(engine, ROOT / "evals" / "sets" / "sample.jsonl", tmp_path / "eval", answerer="llm")


def _failed_metrics(engine, tmp_path: Path) -> set[str]:
    set_path = ROOT / "evals" / "sets" / "default.jsonl"
    summary = run_set(engine, load_cases(set_path), ["extractive"], tmp_path, set_path=str(set_path),
                      write_report=False)
    failures = check_thresholds(summary, load_thresholds(FLOORS))
    # Each failure reads "<set>.<answerer>: <metric> <value> is below its floor <floor>".
    return {line.split(": ", 1)[1].split(" ", 1)[0] for line in failures}


@pytest.mark.slow
def test_the_gate_catches_an_assistant_that_never_refuses(default_corpus_index, embedder, tmp_path, monkeypatch):
    """A deliberate regression: with every refusal rule off, the floors must fail on refusals.

    Refusal accuracy alone would let it through (answering every answerable case makes up for most of the
    unanswerable ones): the unanswerable cases' own rate has a floor for this."""
    from assistant.engine import Engine

    settings, _ = default_corpus_index
    engine = Engine(settings, embedder)
    engine.pipeline.min_relevance = -1.0
    engine.extractive.answerable = float("-inf")
    monkeypatch.setattr(engine.retriever, "unknown_terms", lambda question: [])
    assert "unanswerable_refused" in _failed_metrics(engine, tmp_path)


@pytest.mark.slow
def test_the_gate_catches_a_worse_ranking(default_corpus_index, embedder, tmp_path):
    """A deliberate regression: dense retrieval alone, without BM25, must fail the retrieval floors."""
    from assistant.engine import Engine

    settings, _ = default_corpus_index
    engine = Engine(settings, embedder)
    engine.retriever.mode = "dense"
    failed = _failed_metrics(engine, tmp_path)
    assert failed & {"hit@1", "hit@5", "mrr", "ndcg@10", "recall@10"}, failed
