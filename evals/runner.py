"""Run a test set through the assistant and score every answer.

For each case: ask the pipeline (question + history) with the chosen answerer; retrieve again
with the answer's own standalone query, deeper (``RANKING_DEPTH`` chunks), for the retrieval
metrics, and with BM25 alone for the baseline row; score the answer, its citations and its
faithfulness with an independent judge.

Writes to the output folder:
  results.jsonl   one line per (answerer, case): the answer, its citations, the scores
  summary.json    the metrics per answerer, the refusal confusion matrix, latency, per-tag scores,
                  the retrieval baselines (a fixed list of notes, BM25 alone)
  report.md       the same for people, with plots (plots/*.png) and the ten worst cases
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals import metrics as m
from evals import report
from evals.alignment_judge import AlignmentJudge
from evals.cases import EvalCase
from evals.judge import Judge, agreement, passage_text
from evals.metrics import EXTRA_METRICS, HEADLINE, STAGES, baselines, retrieval_scores

RANKING_DEPTH = 30
"""Chunks retrieved for the retrieval metrics (deduplicated to sources, best chunk first)."""

ProgressCallback = Callable[[str, int, int], None]


# Scoring one case ------------------------------------------------------------------------------


def judge_answer(answer: dict[str, Any], judge: Judge) -> list[dict[str, Any]]:
    """For each sentence of the answer: its cited passages and whether each supports it."""
    citations = {c["n"]: c for c in answer.get("citations", [])}
    out = []
    for sentence in answer.get("sentences", []):
        cited = []
        for n in sentence.get("citations", []):
            citation = citations.get(n)
            if citation is None:
                cited.append({"n": n, "source": None, "supported": False, "word_share": 0.0,
                              "reason": "the citation number has no passage"})
                continue
            verdict = judge.judge(sentence["text"], passage_text(citation))
            cited.append({"n": n, "source": citation["source"], "supported": verdict.supported,
                          "word_share": round(verdict.word_share, 3), "reason": verdict.reason})
        out.append({"text": sentence["text"], "status": sentence.get("status", ""), "cited": cited,
                    "supported": any(c["supported"] for c in cited)})
    return out


def every_citation_supported(judgements: list[dict[str, Any]]) -> bool:
    """Whether the answer has sentences, each cites a passage, and the judge finds every cited passage
    supports its sentence (an uncited sentence is unsupported, as in faithfulness)."""
    return bool(judgements) and all(j["cited"] and all(c["supported"] for c in j["cited"]) for j in judgements)


def score_case(case: EvalCase, answer: dict[str, Any], ranking: Sequence[str],
               judgements: list[dict[str, Any]]) -> dict[str, float | None]:
    """Every per-case score; None where a metric does not apply to the case.

    ``ranking`` is the retrieved sources, best first, deduplicated; ``judgements`` is
    ``judge_answer``'s output for this answer.
    """
    refused = bool(answer.get("refused"))
    gold = set(case.gold_sources)
    answerable = case.answerable
    scores: dict[str, float | None] = {key: None for key in (*HEADLINE, *EXTRA_METRICS)}
    scores["refused"] = float(refused)
    scores["refusal_accuracy"] = float(refused != answerable)
    # The confusion matrix's two rates, each gated on its own: refusal accuracy alone lets an assistant
    # that never refuses pass, trading the unanswerable cases for a few more answered ones.
    if answerable:
        scores["answerable_answered"] = float(not refused)
    else:
        scores["unanswerable_refused"] = float(refused)
    scores["answered_rate"] = float(not refused)
    scores["hop_rate"] = float(bool(answer.get("hop_queries")))
    scores["hops"] = float((answer.get("timings") or {}).get("hops") or 1)
    if answerable:
        scores.update(retrieval_scores(ranking, gold))
        # Whether the answerer was given a gold note at all, refused or not: averaged over answered cases
        # only, it would reward refusing whenever retrieval missed (the *_answered variant keeps that view).
        seen = [p["source"] for p in answer.get("passages", [])]
        scores["answer_passage_hit"] = m.source_hit(seen, gold)
        if not refused:
            scores["answer_passage_hit_answered"] = scores["answer_passage_hit"]
        if case.gold_passages:
            scores["passage_hit"] = m.passage_hit((p["text"] for p in answer.get("passages", [])),
                                                  case.gold_passages)
        text = "" if refused else answer.get("answer", "")
        if case.key_facts:
            scores["key_fact_recall"] = m.key_fact_recall(case.key_facts, text)
            if not refused:
                scores["key_fact_recall_answered"] = scores["key_fact_recall"]
        scores["token_f1"] = m.token_f1(text, case.reference_answer) if text else 0.0
        if case.reference_answer:
            # The direct answer's value alone, as HotpotQA and the FlashRAG tables score short answers.
            direct = "" if refused else (answer.get("direct_answer") or {}).get("answer", "")
            scores["direct_em"] = m.exact_match(direct, case.reference_answer) if direct else 0.0
            scores["direct_f1"] = m.token_f1(direct, case.reference_answer) if direct else 0.0
        if not refused:
            scores["token_f1_answered"] = scores["token_f1"]
        cited_sources = [c["source"] for c in answer.get("citations", [])]
        scores["citation_recall"] = 0.0 if refused else m.citation_recall(cited_sources, gold)
        # A refusal of an answerable case scores 0 on citation precision and faithfulness too: averaged
        # over answered cases only, they would reward refusing the hard questions (the *_answered variants
        # keep that view).
        pairs = [(c["source"], c["supported"]) for j in judgements for c in j["cited"]]
        # A related note states the key fact too, so citing it for that fact is right; what precision must
        # catch is a supported-looking quote from a note with no bearing on the question.
        citable = gold | set(case.related_sources)
        scores["citation_precision"] = 0.0 if refused else m.citation_precision(pairs, citable)
        facts_found = not refused and all(m.fact_found(f, text) for f in case.key_facts)
        scores["answered_and_right"] = float(facts_found and every_citation_supported(judgements))
    if not refused and judgements:
        scores["faithfulness"] = sum(j["supported"] for j in judgements) / len(judgements)
    elif not refused or answerable:
        # An answer with no sentences to check is not a faithful one, nor is refusing an answerable case.
        scores["faithfulness"] = 0.0
    if not refused:
        scores["citation_precision_answered"] = scores["citation_precision"]
        scores["faithfulness_answered"] = scores["faithfulness"]
    parts = [scores[k] for k in ("refusal_accuracy", "key_fact_recall", "token_f1", "citation_precision",
                                 "faithfulness")]
    scores["case_score"] = m.mean(parts)
    return scores


# Aggregation -----------------------------------------------------------------------------------


def summarize_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Metrics, confusion matrix, latency and per-tag scores for the rows of one answerer."""
    metric_names = (*HEADLINE, *EXTRA_METRICS)
    metrics: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for name in metric_names:
        values = [r["scores"].get(name) for r in rows]
        metrics[name] = m.mean(values)
        counts[name] = sum(v is not None for v in values)
    confusion = m.refusal_confusion((r["answerable"], bool(r["scores"]["refused"])) for r in rows)
    # refusal_accuracy stays the mean of the per-case scores: equal to m.refusal_accuracy(confusion),
    # except that a case that crashed counts as wrong whichever way it leans.
    latency: dict[str, dict[str, float | None]] = {}
    for stage in STAGES:
        values = [r["answer"]["timings"].get(stage) for r in rows if r.get("answer")]
        values = [v for v in values if v is not None and not (stage != "total_s" and v == 0.0)]
        latency[stage] = {"p50": m.percentile(values, 50), "p95": m.percentile(values, 95),
                          "mean": m.mean(values), "n": len(values)}
    wall = [r["wall_s"] for r in rows]
    latency["case_wall_s"] = {"p50": m.percentile(wall, 50), "p95": m.percentile(wall, 95),
                              "mean": m.mean(wall), "n": len(wall)}
    by_tag: dict[str, dict[str, Any]] = {}
    for tag in sorted({t for r in rows for t in r["tags"]}):
        tagged = [r for r in rows if tag in r["tags"]]
        by_tag[tag] = {"cases": len(tagged),
                       **{name: m.mean(r["scores"].get(name) for r in tagged) for name in HEADLINE}}
        by_tag[tag]["refusal_accuracy"] = m.mean(r["scores"]["refusal_accuracy"] for r in tagged)
    return {"metrics": metrics, "counts": counts, "confusion": confusion, "latency": latency,
            "by_tag": by_tag, "baselines": baselines(rows), "errors": sum(1 for r in rows if r.get("error")),
            "cases": len(rows)}


# Running ---------------------------------------------------------------------------------------


def _ranking(engine: Any, query: str, retriever: Any = None) -> list[str]:
    if retriever is None:
        result = engine.retriever.retrieve(query, k=max(RANKING_DEPTH, engine.settings.top_k))
    else:  # a baseline ranks alone: no MMR re-ordering of its list
        result = retriever.retrieve(query, k=max(RANKING_DEPTH, engine.settings.top_k), use_mmr=False)
    return m.unique_in_order(p.chunk.source for p in result.passages)


def lexical_retriever(engine: Any) -> Any:
    """BM25 alone over the engine's own index (the Retriever's lexical mode, no reranker): the baseline row."""
    # Here, not at the top: the retriever pulls in chromadb and LangChain (~1.5 s), which scoring and
    # summarizing rows (the tests, the report) never need; a run has loaded them already through its engine.
    from assistant.retrieval import Retriever

    settings = engine.settings.model_copy(update={"reranker_model": None})
    return Retriever(settings, engine.store, engine.embedder, mode="lexical")


def _empty_answer(case: EvalCase, answerer: str) -> dict[str, Any]:
    return {"question": case.question, "query": case.question, "answer": "", "refused": True,
            "refusal_reason": "error", "answerer": answerer, "sentences": [], "dropped": [], "citations": [],
            "passages": [], "timings": dict.fromkeys(STAGES, 0.0)}


def run_case(engine: Any, answerer: Any, case: EvalCase, judge: Judge, lexical: Any = None) -> dict[str, Any]:
    """Ask one case and score it; an exception becomes a row with ``error`` set and zero scores.

    With ``lexical`` (``lexical_retriever``), the row also holds BM25's ranking of the same standalone
    query (``bm25_sources``) for the baseline row.
    """
    started = time.perf_counter()
    error = ""
    bm25: list[str] | None = [] if lexical is not None else None
    try:
        answer = engine.pipeline.ask(answerer, case.question, case.turns()).as_dict()
        ranking = _ranking(engine, answer["query"])
        if lexical is not None:
            try:
                bm25 = _ranking(engine, answer["query"], lexical)
            except Exception:  # the baseline is for comparison: without it the row still scores the system
                bm25 = None
    except Exception as exc:
        answer = _empty_answer(case, answerer.name)
        ranking = []
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
    judgements = judge_answer(answer, judge)
    scores = score_case(case, answer, ranking, judgements)
    if error:  # a crash is a wrong answer, whichever way the case leans
        scores["refusal_accuracy"] = 0.0
        scores["answerable_answered" if case.answerable else "unanswerable_refused"] = 0.0
        scores["case_score"] = 0.0
    row = {
        "id": case.id, "answerer": answerer.name, "question": case.question,
        "history": [t.model_dump() for t in case.history], "tags": list(case.tags),
        "answerable": case.answerable, "reference_answer": case.reference_answer,
        "key_facts": list(case.key_facts), "gold_sources": list(case.gold_sources),
        "related_sources": list(case.related_sources),
        "found_key_facts": [f for f in case.key_facts if not answer["refused"] and m.fact_found(f, answer["answer"])],
        "retrieved_sources": ranking[:10], "answer": answer, "judgements": judgements,
        "scores": scores, "wall_s": round(time.perf_counter() - started, 4), "error": error,
    }
    if bm25 is not None:  # absent, the set gets no BM25 baseline rather than one scored 0 on this case
        row["bm25_sources"] = bm25
    return row


def settings_snapshot(settings: Any) -> dict[str, Any]:
    keys = ("embedding_model", "chunk_tokens", "chunk_overlap", "top_k", "candidates", "rrf_k", "use_mmr",
            "reranker_model", "min_relevance", "support_threshold", "unsupported", "llm_size", "llm_url",
            "llm_model", "collection", "data_dir", "sources_dir")
    values = {k: getattr(settings, k, None) for k in keys}
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def run_set(engine: Any, cases: Sequence[EvalCase], answerers: Sequence[str], out_dir: Path, *,
            set_path: str = "", judge: Judge | None = None, progress: ProgressCallback | None = None,
            write_report: bool = True, warmup: bool = True) -> dict[str, Any]:
    """Run every case with every answerer; write results.jsonl, summary.json and report.md."""
    judge = judge or AlignmentJudge()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary: dict[str, Any] = {
        "kind": "qa", "set": set_path, "cases": len(cases), "answerers": list(answerers), "judge": judge.name,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "settings": settings_snapshot(engine.settings), "runs": {},
        # A judge's verdicts mean only as much as its agreement with people: recorded with every run.
        "judge_agreement": agreement(judge).as_dict(),
    }
    try:
        summary["index"] = engine.status().as_dict()
    except Exception as exc:  # the status is for the record; the run can go on without it
        summary["index"] = {"error": str(exc)}
    all_rows: list[dict[str, Any]] = []
    lexical = lexical_retriever(engine)
    with (out_dir / "results.jsonl").open("w", encoding="utf-8") as out:
        for name in answerers:
            answerer = engine.answerer(name)
            if warmup and cases:
                # Load the models (and start an LLM server) outside the timings: one untimed question,
                # the last case's, so that no prompt cache favours the first timed case.
                with contextlib.suppress(Exception):  # the case itself will report the error
                    engine.pipeline.ask(answerer, cases[-1].question)
            rows = []
            run_started = time.perf_counter()
            for done, case in enumerate(cases, start=1):
                row = run_case(engine, answerer, case, judge, lexical)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                rows.append(row)
                if progress:
                    progress(name, done, len(cases))
            run = summarize_rows(rows)
            run["wall_s"] = round(time.perf_counter() - run_started, 2)
            summary["runs"][name] = run
            all_rows.extend(rows)
    return save_results(out_dir, summary, all_rows, started=started, write_report=write_report)


def save_results(out_dir: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]], *, started: float,
                 write_report: bool) -> dict[str, Any]:
    """End a run whose rows are in results.jsonl already: its wall time into ``summary``, then summary.json
    and, if asked, report.md. Returns ``summary``."""
    summary["wall_s"] = round(time.perf_counter() - started, 2)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if write_report:
        report.write_report(out_dir, summary, rows)
    return summary


def load_results(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """summary.json and results.jsonl of a result folder."""
    summary = json.loads((folder / "summary.json").read_text())
    results = folder / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.exists() else []
    return summary, rows
