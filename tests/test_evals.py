"""The evaluation harness: metrics on hand-made examples, the loaders' errors, scoring, compare, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evals import metrics as m
from evals.cases import CaseFileError, EvalCase, load_beir, load_cases, missing_sources
from evals.compare import check_thresholds, compare_summaries, load_thresholds
from evals.judge import LexicalJudge, numbers, stem, words
from evals.runner import HEADLINE, judge_answer, score_case, summarize_rows

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT / "evals" / "sets" / "default.jsonl"

# Retrieval metrics ------------------------------------------------------------------------------


def test_hit_recall_mrr():
    ranked = ["x", "a", "y", "b"]
    assert m.hit_at_k(ranked, {"a", "b"}, 1) == 0.0
    assert m.hit_at_k(ranked, {"a", "b"}, 2) == 1.0
    assert m.recall_at_k(ranked, {"a", "b"}, 2) == 0.5
    assert m.recall_at_k(ranked, {"a", "b"}, 4) == 1.0
    assert m.recall_at_k(ranked, set(), 4) == 0.0
    assert m.reciprocal_rank(ranked, {"a", "b"}) == 0.5
    assert m.reciprocal_rank(ranked, {"b"}) == 0.25
    assert m.reciprocal_rank(ranked, {"b"}, k=3) == 0.0
    assert m.reciprocal_rank(ranked, {"z"}) == 0.0


def test_ndcg_known_rankings():
    # Binary: relevant at ranks 2 and 3 of 3. DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3).
    expected = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert m.ndcg_at_k(["d3", "d1", "d2"], {"d1", "d2"}, 10) == pytest.approx(expected)
    assert m.ndcg_at_k(["d3", "d1", "d2"], {"d1", "d2"}, 10) == pytest.approx(0.6934, abs=1e-4)
    # Graded gains, linear (trec_eval): [a(1), b(2)] against the ideal [b, a].
    graded = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert m.ndcg_at_k(["a", "b"], {"a": 1, "b": 2}, 10) == pytest.approx(graded)
    assert m.ndcg_at_k(["b", "a"], {"a": 1, "b": 2}, 10) == pytest.approx(1.0)
    # The cut-off: a relevant document at rank 11 counts for nothing at @10.
    assert m.ndcg_at_k([f"n{i}" for i in range(10)] + ["r"], {"r"}, 10) == 0.0
    # A repeated id counts once; no relevant ids -> 0.
    assert m.ndcg_at_k(["a", "a", "b"], {"a", "b"}, 10) == pytest.approx(1.0)
    assert m.ndcg_at_k(["a"], {}, 10) == 0.0
    # Judged-but-irrelevant (gain 0) is not relevant.
    assert m.ndcg_at_k(["a", "b"], {"a": 0, "b": 1}, 10) == pytest.approx(1 / math.log2(3))


def test_doc_ranking_takes_the_best_chunk_per_document():
    chunks = [("d1", 0.2), ("d2", 0.9), ("d1", 0.95), ("d3", 0.5), ("d2", 0.1)]
    assert m.doc_ranking(chunks) == ["d1", "d2", "d3"]
    assert m.unique_in_order(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_passage_hit_ignores_case_and_whitespace():
    passages = ["China's IC market was worth\n$143.4 billion, and chips"]
    assert m.passage_hit(passages, ["china's ic market was worth $143.4 billion"]) == 1.0
    assert m.passage_hit(passages, ["worth $22.7 billion"]) == 0.0


# Answer metrics ---------------------------------------------------------------------------------


def test_key_fact_recall_normalises_numbers_and_case():
    answer = "Chips made in China covered 15.90 per cent of a US$143.4 Billion market, 1,334 firms [1]."
    assert m.key_fact_recall(["15.9%", "$143.4 billion", "1334 firms"], answer) == 1.0
    assert m.key_fact_recall(["15.9%", "$22.7 billion"], answer) == 0.5
    assert m.key_fact_recall([], answer) == 1.0
    assert m.fact_found("16%", "a share of 16.0%")
    assert not m.fact_found("15.1%", "15.15%")
    assert not m.fact_found("5.9%", "covered 15.9% of demand")  # not inside a longer number
    assert not m.fact_found("2014", "in 20145") and m.fact_found("2014", "in 2014.")
    assert m.fact_found("$8.3 billion", "made $8.3 billion [1]") and not m.fact_found("$8.3 billion", "$18.3 billion")
    assert m.fact_found("Made in China 2025", "the MADE IN CHINA 2025 plan")
    assert m.fact_found("2014–2020", "from 2014-2020")  # dashes unified


def test_normalize_numbers():
    assert m.normalize_numbers("1,334 and 2,000,000 in 2014, 2020") == "1334 and 2000000 in 2014, 2020"
    assert m.normalize_numbers("15.90 and 16.0 and 10.05") == "15.9 and 16 and 10.05"
    assert m.normalize_numbers("70 percent, 5 %") == "70%, 5%"


def test_token_f1_known_values():
    assert m.token_f1("the cat sat", "cat sat down") == pytest.approx(0.8)
    assert m.token_f1("Cat sat [1].", "the cat, sat") == pytest.approx(1.0)
    assert m.token_f1("dog", "cat") == 0.0
    assert m.token_f1("", "cat") == 0.0
    assert m.token_f1("It was 15.9% in 2020.", "15.9% in 2020") == pytest.approx(2 * 1 * (3 / 5) / (1 + 3 / 5))


def test_refusal_confusion_and_accuracy():
    pairs = [(True, False), (True, False), (True, True), (False, True), (False, False)]
    confusion = m.refusal_confusion(pairs)
    assert confusion == {"answered_answerable": 2, "refused_answerable": 1, "answered_unanswerable": 1,
                         "refused_unanswerable": 1}
    assert m.refusal_accuracy(confusion) == pytest.approx(3 / 5)
    assert m.refusal_accuracy(m.refusal_confusion([])) == 0.0


def test_citation_precision_and_recall():
    gold = {"a.md", "b.md"}
    assert m.citation_precision([("a.md", True), ("a.md", False), ("c.md", True), ("b.md", True)], gold) == 0.5
    assert m.citation_precision([], gold) == 0.0
    assert m.citation_recall(["a.md", "c.md", "a.md"], gold) == 0.5
    assert m.citation_recall(["a.md"], set()) == 0.0


def test_mean_and_percentiles():
    assert m.mean([1.0, None, 3.0]) == 2.0
    assert m.mean([None]) is None
    assert m.percentile([1, 2, 3, 4], 50) == 2.5
    assert m.percentile(range(1, 101), 95) == pytest.approx(95.05)
    assert m.percentile([7.0], 95) == 7.0
    assert m.percentile([], 50) is None


# The independent judge --------------------------------------------------------------------------


def test_judge_needs_every_number_and_most_words():
    judge = LexicalJudge()
    passage = "According to IC Insights, chips made in China covered 15.9% of China's $143.4 billion IC market in 2020."
    assert judge.judge("Chips made in China covered 15.9% of the market in 2020 [1].", passage).supported
    wrong_number = judge.judge("Chips made in China covered 16.7% of the market in 2020.", passage)
    assert not wrong_number.supported and wrong_number.missing_numbers == ("16.7",)
    unrelated = judge.judge("The Big Fund raised money from state banks for lithography.", passage)
    assert not unrelated.supported and unrelated.word_share < 0.6


def test_judge_stemming_and_numbers():
    assert stem("produces") == stem("produced") == stem("producing") == stem("produce")
    assert stem("policies") == stem("policy")
    assert "chip" in words("The chips [2]")
    assert numbers("worth $1,334.50 in 2014 [3]") == {"1334.5", "2014"}


# Loading cases ----------------------------------------------------------------------------------

GOOD = {"id": "c1", "question": "What share?", "answerable": True, "reference_answer": "15.9%.",
        "key_facts": ["15.9%"], "gold_sources": ["a.md"], "tags": ["numeric"]}


def write_set(tmp_path: Path, rows: list[object], name: str = "default.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def load_errors(tmp_path: Path, rows: list[object]) -> list[str]:
    with pytest.raises(CaseFileError) as info:
        load_cases(write_set(tmp_path, rows))
    return info.value.problems


def test_the_default_set_loads_and_its_gold_sources_exist():
    cases = load_cases(DEFAULT_SET)
    assert len(cases) >= 150
    assert len({c.id for c in cases}) == len(cases)
    assert any(c.history for c in cases) and any(not c.answerable for c in cases)
    assert missing_sources(cases, ROOT / "sources") == {}


def test_loader_reports_line_and_field(tmp_path):
    rows = [GOOD] * 0 + [dict(GOOD, id=f"c{i}") for i in range(11)] + [dict(GOOD, id="c11", answerable="yes")]
    problems = load_errors(tmp_path, rows)
    assert problems == ["default.jsonl line 12: field 'answerable' must be true or false"]


def test_loader_reports_every_problem(tmp_path):
    missing = {k: v for k, v in GOOD.items() if k != "reference_answer"}
    rows = [
        dict(GOOD),
        "{not json",
        dict(missing, id="c3"),
        dict(GOOD, id="c4", tags="numeric"),
        dict(GOOD, id="c5", history=[{"role": "bot", "content": "hi"}]),
        dict(GOOD, id="c6", colour="blue"),
        dict(GOOD),
        dict(GOOD, id="c8", gold_sources=[]),
        dict(GOOD, id="c9", gold_sources=["../etc/passwd"]),
        dict(GOOD, id="c10", question="  "),
        [1, 2],
        dict(GOOD, id="c12", key_facts=[3]),
    ]
    problems = load_errors(tmp_path, rows)
    assert problems[0].startswith("default.jsonl line 2: not valid JSON")
    assert "default.jsonl line 3: field 'reference_answer' is required" in problems
    assert "default.jsonl line 4: field 'tags' must be a list" in problems
    assert "default.jsonl line 5: field 'history[0].role' must be one of 'user' or 'assistant'" in problems
    assert "default.jsonl line 6: field 'colour' is not a known field" in problems
    assert "default.jsonl line 7: field 'id' 'c1' repeats the id of line 1" in problems
    assert ("default.jsonl line 8: field 'gold_sources' an answerable case needs at least one gold source"
            in problems)
    assert any(p.startswith("default.jsonl line 9: field 'gold_sources' must hold paths relative") for p in problems)
    assert "default.jsonl line 10: field 'question' must not be empty" in problems
    assert "default.jsonl line 11: must be a JSON object, not list" in problems
    assert "default.jsonl line 12: field 'key_facts[0]' must be a string" in problems
    assert len(problems) == 11


def test_loader_accepts_optional_fields_and_blank_lines(tmp_path):
    rows = [dict(GOOD, history=[{"role": "user", "content": "Earlier?"}], gold_passages=["15.9%"]), "",
            dict(GOOD, id="u1", answerable=False, key_facts=[], gold_sources=[])]
    cases = load_cases(write_set(tmp_path, rows))
    assert [c.id for c in cases] == ["c1", "u1"]
    assert cases[0].turns()[0].role == "user"
    with pytest.raises(CaseFileError, match="no such test set"):
        load_cases(tmp_path / "absent.jsonl")
    with pytest.raises(CaseFileError, match="empty"):
        load_cases(write_set(tmp_path, [""], "empty.jsonl"))


def make_beir(folder: Path, docs: dict[str, tuple[str, str]], queries: dict[str, str],
              qrels: list[tuple[str, str, int]]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in docs.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels))
    return folder


def test_beir_loader(tmp_path):
    folder = make_beir(tmp_path / "tiny", {"d1": ("T1", "one"), "d2": ("", "two")},
                       {"q1": "first", "q2": "second", "q3": "unjudged"}, [("q1", "d1", 1), ("q2", "d2", 2)])
    beir = load_beir(folder)
    assert beir.name == "tiny"
    assert [d.id for d in beir.corpus] == ["d1", "d2"]
    assert beir.queries == {"q1": "first", "q2": "second"}
    assert beir.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    with pytest.raises(CaseFileError, match=r"missing corpus\.jsonl"):
        load_beir(tmp_path)


# Scoring a case ---------------------------------------------------------------------------------


def _answer(text: str, sentences: list[tuple[str, list[int]]], citations: dict[int, tuple[str, str]],
            refused: bool = False) -> dict:
    return {
        "question": "q", "query": "q", "answer": text, "refused": refused, "refusal_reason": "",
        "sentences": [{"text": s, "citations": c, "status": "supported"} for s, c in sentences],
        "citations": [{"n": n, "source": src, "title": "", "heading": "", "text": body}
                      for n, (src, body) in citations.items()],
        "passages": [{"text": body, "source": src} for src, body in citations.values()],
        "timings": {"retrieval_s": 0.01, "generation_s": 0.02, "first_token_s": 0.02, "verification_s": 0.01,
                    "total_s": 0.05},
    }


def test_score_case_on_a_hand_made_answer():
    case = EvalCase(**dict(GOOD, gold_sources=["a.md", "b.md"], key_facts=["15.9%", "$143.4 billion"],
                           reference_answer="Chips made in China covered 15.9% of the market.",
                           gold_passages=["covered 15.9%"]))
    passage_a = "IC Insights said chips made in China covered 15.9% of the $143.4 billion market in 2020."
    passage_c = "The Big Fund was set up in 2014."
    answer = _answer(
        "Chips made in China covered 15.9% of the market [1]. The Big Fund raised money in 2019 [2].",
        [("Chips made in China covered 15.9% of the market.", [1]), ("The Big Fund raised money in 2019.", [2])],
        {1: ("a.md", passage_a), 2: ("c.md", passage_c)},
    )
    judgements = judge_answer(answer, LexicalJudge())
    assert [j["supported"] for j in judgements] == [True, False]
    scores = score_case(case, answer, ["c.md", "a.md", "b.md"], judgements)
    assert scores["refusal_accuracy"] == 1.0
    assert scores["hit@1"] == 0.0 and scores["hit@5"] == 1.0
    assert scores["mrr"] == 0.5
    assert scores["recall@10"] == 1.0
    assert scores["key_fact_recall"] == 0.5
    assert scores["citation_precision"] == 0.5
    assert scores["citation_recall"] == 0.5
    assert scores["faithfulness"] == 0.5
    assert scores["passage_hit"] == 1.0
    assert 0 < scores["token_f1"] < 1


def test_score_case_refusals():
    unanswerable = EvalCase(**dict(GOOD, id="u", answerable=False, key_facts=[], gold_sources=[]))
    refused = _answer("The indexed sources do not cover this question.", [], {}, refused=True)
    scores = score_case(unanswerable, refused, ["a.md"], [])
    assert scores["refusal_accuracy"] == 1.0
    assert scores["hit@1"] is None and scores["faithfulness"] is None and scores["key_fact_recall"] is None
    assert scores["case_score"] == 1.0
    answerable = EvalCase(**GOOD)
    missed = score_case(answerable, refused, ["a.md"], [])
    assert missed["refusal_accuracy"] == 0.0
    assert missed["key_fact_recall"] == 0.0 and missed["token_f1"] == 0.0 and missed["citation_recall"] == 0.0
    assert missed["citation_precision"] is None and missed["faithfulness"] is None
    assert missed["hit@1"] == 1.0  # retrieval is scored whether or not the answerer answered


def _row(case_id: str, answerable: bool, refused: bool, tags: list[str], kfr: float | None) -> dict:
    scores = {k: None for k in HEADLINE}
    scores.update({"refused": float(refused), "refusal_accuracy": float(refused != answerable),
                   "key_fact_recall": kfr, "case_score": kfr})
    return {"id": case_id, "answerer": "extractive", "answerable": answerable, "tags": tags, "scores": scores,
            "wall_s": 0.1, "error": "", "answer": {"timings": {"retrieval_s": 0.01, "generation_s": 0.0,
                                                               "first_token_s": None, "verification_s": 0.01,
                                                               "total_s": 0.1}}}


def test_summarize_rows():
    rows = [_row("a", True, False, ["x"], 1.0), _row("b", True, True, ["x", "y"], 0.0),
            _row("c", False, True, ["y"], None)]
    summary = summarize_rows(rows)
    assert summary["metrics"]["refusal_accuracy"] == pytest.approx(2 / 3)
    assert summary["metrics"]["key_fact_recall"] == 0.5
    assert summary["counts"]["key_fact_recall"] == 2
    assert summary["confusion"]["refused_answerable"] == 1
    assert summary["by_tag"]["x"]["cases"] == 2 and summary["by_tag"]["x"]["key_fact_recall"] == 0.5
    assert summary["by_tag"]["y"]["refusal_accuracy"] == 0.5
    assert summary["latency"]["total_s"]["p50"] == pytest.approx(0.1)
    assert summary["latency"]["generation_s"]["n"] == 0  # zero means the stage did not run


# Compare and the gate ---------------------------------------------------------------------------


def _summary(values: dict[str, float], run: str = "extractive", total_p50: float = 0.1) -> dict:
    return {"kind": "qa", "set": "default.jsonl", "cases": 10,
            "runs": {run: {"metrics": values, "latency": {"total_s": {"p50": total_p50, "p95": 0.3}}}}}


def test_compare_prints_deltas():
    a = _summary({"hit@1": 0.5, "faithfulness": 0.9, "token_f1": 0.3}, total_p50=0.100)
    b = _summary({"hit@1": 0.75, "faithfulness": 0.8, "token_f1": 0.3}, total_p50=0.200)
    text = compare_summaries(a, b, "old", "new")
    lines = {line.split()[0]: line for line in text.splitlines() if line and not line.startswith("latency")}
    lines["latency total"] = next(line for line in text.splitlines() if line.startswith("latency total p50"))
    assert lines["hit@1"].split()[1:] == ["0.500", "0.750", "+0.250", "better"]
    assert lines["faithfulness"].split()[1:] == ["0.900", "0.800", "-0.100", "WORSE"]
    assert lines["token_f1"].split()[1:] == ["0.300", "0.300", "+0.000", "="]
    assert lines["latency total"].split()[3:] == ["100", "ms", "200", "ms", "+100", "ms", "WORSE"]
    assert "[extractive]" in text


def test_compare_pairs_single_runs_with_different_names():
    text = compare_summaries(_summary({"hit@1": 0.5}), _summary({"hit@1": 0.6}, run="llm"))
    assert "[extractive -> llm]" in text and "+0.100" in text
    a = _summary({"hit@1": 0.5})
    b = {"kind": "qa", "runs": {"x": {"metrics": {}}, "y": {"metrics": {}}}}
    assert "No runs to compare" in compare_summaries(a, b)


def test_thresholds_file_and_check(tmp_path):
    floors = load_thresholds(ROOT / "evals" / "thresholds.toml")
    assert set(floors) >= {"default", "hotpotqa-dev", "clapnq-dev"}
    assert set(floors["default"]["extractive"]) == set(HEADLINE)
    assert all(0.0 <= v <= 1.0 for runs in floors.values() for t in runs.values() for v in t.values())
    summary = {**_summary({"hit@1": 0.8, "faithfulness": 0.5}), "set": "evals/sets/default.jsonl"}
    mine = {"default": {"extractive": {"hit@1": 0.7, "faithfulness": 0.6, "mrr": 0.1}, "llm": {"hit@1": 0.99}},
            "hotpotqa-dev": {"extractive": {"hit@1": 0.99}}}
    assert check_thresholds(summary, mine) == ["default.extractive: faithfulness 0.500 is below its floor 0.600",
                                               "default.extractive: mrr was not measured (floor 0.100)"]
    # A public set's floors are filed under its folder's name, not "set".
    public = {**summary, "set": "../shared/evaldata/hotpotqa-dev/set.jsonl"}
    assert check_thresholds(public, mine) == ["hotpotqa-dev.extractive: hit@1 0.800 is below its floor 0.990"]
    flat = tmp_path / "flat.toml"
    flat.write_text('[extractive]\n"hit@1" = 0.5\n')
    with pytest.raises(ValueError, match=r"\[extractive\.extractive\]"):
        load_thresholds(flat)


def test_cli_registers_eval_and_compares(tmp_path, capsys):
    from assistant import cli

    for name, values in (("a", {"hit@1": 0.5}), ("b", {"hit@1": 0.25})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(_summary(values)))
    assert cli.main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "hit@1" in out and "-0.250" in out and "WORSE" in out
    assert "eval" in cli.COMMANDS
    assert cli.main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == cli.EXIT_ERROR


def test_cli_rejects_a_bad_set(tmp_path, capsys):
    from assistant import cli

    path = write_set(tmp_path, [dict(GOOD, answerable="no")], "bad.jsonl")
    assert cli.main(["eval", "--set", str(path)]) == 2
    assert "bad.jsonl line 1: field 'answerable' must be true or false" in capsys.readouterr().err


def test_report_writes_markdown_and_plots(tmp_path):
    from evals.report import write_report

    rows = [_row("a", True, False, ["x"], 1.0), _row("b", True, True, ["x", "y"], 0.0)]
    for r in rows:
        r.update(question="Q?", history=[], reference_answer="R.", key_facts=["k"], gold_sources=["a.md"],
                 found_key_facts=[], retrieved_sources=["a.md"], judgements=[])
        r["answer"].update(answer="An answer [1].", refused=r["scores"]["refused"] == 1.0, refusal_reason="",
                           query="Q?", citations=[])
    run = summarize_rows(rows)
    summary = {"kind": "qa", "set": "default.jsonl", "cases": 2, "created": "now", "wall_s": 1.0,
               "runs": {"extractive": run}}
    path = write_report(tmp_path, summary, rows)
    text = path.read_text()
    assert "## Headline metrics" in text and "worst cases" in text and "`b`" in text
    for png in ("metrics.png", "latency.png", "tags-extractive.png"):
        assert (tmp_path / "plots" / png).read_bytes()[:4] == b"\x89PNG"


# BEIR end to end (a tiny corpus, the real embedding model) --------------------------------------


def test_beir_run_on_a_tiny_corpus(tmp_path, embedder, make_settings):
    from evals.beir import run_beir

    docs = {
        "d1": ("Lithography machines", "ASML in the Netherlands makes the EUV lithography machines for chips."),
        "d2": ("Aircraft engines", "China's jet engines lag behind; turbine blades are a chokepoint."),
        "d3": ("Steel", "High-end bearing steel needs fewer non-metallic inclusions."),
        "d4": ("Databases", "Most banks in China ran Oracle databases for core systems."),
    }
    folder = make_beir(tmp_path / "tiny", docs, {"q1": "Who makes EUV lithography machines?",
                                                 "q2": "Which steel needs fewer inclusions?"},
                       [("q1", "d1", 1), ("q2", "d3", 1)])
    beir = load_beir(folder)
    settings = make_settings()
    summary = run_beir(beir, settings, embedder, tmp_path / "out", cache_dir=tmp_path / "cache",
                       write_report=False)
    assert summary["index"]["cached"] is False and summary["index"]["chunks"] == 4
    for mode in ("hybrid", "dense", "lexical"):
        assert summary["runs"][mode]["metrics"]["ndcg@10"] == pytest.approx(1.0)
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert {r["ranking"][0] for r in rows if r["id"] == "q1"} == {"d1"}
    again = run_beir(beir, settings, embedder, tmp_path / "out2", cache_dir=tmp_path / "cache", modes=("dense",),
                     write_report=False)
    assert again["index"]["cached"] is True
