"""The evaluation harness: metrics on hand-made examples, the loaders' errors, scoring, compare, the CLI."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from evals import metrics as m
from evals.alignment_judge import passage_units
from evals.cases import CaseFileError, EvalCase, is_own_set, load_beir, load_cases, missing_sources
from evals.compare import check_thresholds, compare_summaries, load_thresholds
from evals.judge import numbers, stem, words
from evals.llm_judge import LexicalJudge
from evals.metrics import FIXED_LIST_SIZE, HEADLINE, baselines, fixed_list
from evals.runner import judge_answer, score_case, summarize_rows

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


def test_related_sources_are_optional_relative_and_never_a_gold_source(tmp_path):
    rows = [dict(GOOD, related_sources=["timeline.md"]), dict(GOOD, id="c2"),
            dict(GOOD, id="c3", related_sources=["a.md"]), dict(GOOD, id="c4", related_sources=["/etc/x.md"]),
            dict(GOOD, id="c5", related_sources="timeline.md")]
    assert load_errors(tmp_path, rows) == [
        "default.jsonl line 3: field 'related_sources' repeats the gold source 'a.md'; a note that answers the "
        "question belongs in gold_sources only, so remove it from related_sources",
        "default.jsonl line 4: field 'related_sources' must hold paths relative to sources/, not '/etc/x.md'",
        "default.jsonl line 5: field 'related_sources' must be a list",
    ]
    cases = load_cases(write_set(tmp_path, rows[:2], "ok.jsonl"))
    assert [c.related_sources for c in cases] == [("timeline.md",), ()]
    (tmp_path / "a.md").write_text("A note.")
    assert missing_sources(cases, tmp_path) == {"c1": ["timeline.md"]}  # a related note must exist too


# Key facts that mean something -----------------------------------------------------------------

BAD_FACTS = [
    ("in-question", "What did the plan say about touch screens?", ["touch screens"], "already appears in the question"),
    ("common-word", "What are tactile sensors for?", ["touch"], "is a single common word"),
    ("bare-year", "When was the fund set up?", ["2014"], "is a bare year or date word"),
    ("year-with-filler", "When was the fund set up?", ["in 2014"], "is a bare year or date word"),
    ("bare-month", "Since when had the news circulated?", ["March"], "is a bare year or date word"),
    ("hyphenated-word", "What kind of method is it?", ["molecular-biology"], "is a single common word"),
    ("filler-only", "Which one?", ["the"], "holds only articles and prepositions"),
]


def test_key_fact_rules_refuse_a_case_of_our_own_with_its_line(tmp_path):
    good = dict(GOOD, question="How much of the market did chips made in China cover?",
                key_facts=["15.9%", "$143.4 billion", "SMIC", "5G", "BeiDou", "eight", "sense touch and pressure",
                           "self-sufficient in technology by 2035", "2021-2025", "1,334"])
    rows = [good] + [dict(GOOD, id=case_id, question=q, key_facts=facts) for case_id, q, facts, _ in BAD_FACTS]
    with pytest.raises(CaseFileError) as info:
        load_cases(write_set(tmp_path, rows), strict_key_facts=True)
    problems = info.value.problems
    assert len(problems) == len(BAD_FACTS)
    for number, ((_, _, facts, why), problem) in enumerate(zip(BAD_FACTS, problems, strict=True), start=2):
        assert problem.startswith(f"default.jsonl line {number}: field 'key_facts[0]' {facts[0]!r} {why}"), problem
        assert "or drop the fact" in problem  # and it says what to do
    assert [c.id for c in load_cases(write_set(tmp_path, [good], "good.jsonl"), strict_key_facts=True)] == ["c1"]


def test_key_fact_rules_only_warn_about_an_external_set(tmp_path, caplog):
    rows = [GOOD] + [dict(GOOD, id=case_id, question=q, key_facts=facts) for case_id, q, facts, _ in BAD_FACTS]
    path = write_set(tmp_path, rows, "set.jsonl")
    assert not is_own_set(path)
    with caplog.at_level("WARNING", logger="evals.cases"):
        cases = load_cases(path)
    assert len(cases) == len(rows)
    assert f"{len(BAD_FACTS)} key facts break the key-fact rules; not refused" in caplog.text
    assert "set.jsonl line 2: field 'key_facts[0]' 'touch screens' already appears in the question" in caplog.text
    with pytest.raises(CaseFileError, match=re.escape("set.jsonl line 3: field 'key_facts[0]' 'touch'")):
        load_cases(path, strict_key_facts=True)


def test_our_sets_are_the_ones_under_evals_sets(tmp_path):
    assert is_own_set(DEFAULT_SET) and is_own_set(ROOT / "evals" / "sets" / ".." / "sets" / "sample.jsonl")
    assert not is_own_set(tmp_path / "default.jsonl")
    assert not is_own_set(ROOT / "evals" / "thresholds.toml")


def _note_body(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text.split("\n---", 1)[1] if text.startswith("---") else text  # front matter is metadata, not text


def test_every_key_fact_of_the_default_set_is_stated_in_one_of_its_gold_notes():
    # A key fact is matched by containment in the answer, and the answer may only say what a note says.
    missing = []
    for case in load_cases(DEFAULT_SET):
        bodies = [_note_body(ROOT / "sources" / g) for g in case.gold_sources]
        missing += [f"{case.id}: {f!r}" for f in case.key_facts if not any(m.fact_found(f, b) for b in bodies)]
    assert not missing, "key facts no gold note states:\n" + "\n".join(missing)


def test_the_sample_is_every_sixth_case_of_the_default_set():
    default = [line for line in DEFAULT_SET.read_text().splitlines() if line.strip()]
    sample = [line for line in (DEFAULT_SET.parent / "sample.jsonl").read_text().splitlines() if line.strip()]
    assert sample == default[::6], "re-cut sets/sample.jsonl as every sixth line of default.jsonl, from the first"
    tags = {t for line in sample for t in json.loads(line)["tags"]}
    assert {"paraphrase", "near-miss"} <= tags, "the sample must keep both kinds of new case: move one in the set"


# The default set: gold that discriminates, questions in other words, near misses -------------------

# How a note says what it leaves out ("our sources do not say ...", "gives no figures for ..."): a near
# miss about such a gap is answered by the note's own admission, so it tests nothing.
_GAP = re.compile(r"\b(?:do|does|did)(?: not|n't)\b|\bgives? no\b|\boffers? no\b|\bnot (?:given|named|identified)\b"
                  r"|\bno (?:figures?|date|details?|information|breakdown|examples?|numbers?)\b"
                  r"|\bnone of\b|\bneither\b", re.IGNORECASE)


def _note_sentences() -> list[tuple[str, str]]:
    """(note, sentence) for every sentence, heading, title and summary of the indexed notes."""
    out = []
    for path in sorted((ROOT / "sources").glob("*.md")):
        if path.name == "README.md":  # not indexed
            continue
        text = path.read_text(encoding="utf-8")
        front = text.split("\n---", 1)[0] if text.startswith("---") else ""
        paragraphs, headings = passage_units(_note_body(path))
        out += [(path.name, s) for s in (*(s for p in paragraphs for s in p), *headings)]
        out += [(path.name, line.split(":", 1)[1].strip().strip('"')) for line in front.splitlines()
                if line.startswith(("title:", "summary:"))]
    return out


def _closest(question: str, sentences: list[tuple[str, str]]) -> tuple[float, str, str]:
    """The largest share of the question's content words that one sentence holds, with that sentence."""
    asked = words(question)
    return max(((len(asked & words(s)) / len(asked), note, s) for note, s in sentences), default=(0.0, "", ""))


def test_gold_sources_are_the_notes_that_answer_not_every_note_that_mentions_a_fact():
    cases = [c for c in load_cases(DEFAULT_SET) if c.answerable]
    sizes = [len(c.gold_sources) for c in cases]
    assert sum(sizes) / len(sizes) <= 1.5 and max(sizes) <= 3
    # The timeline note was gold in 45 of 134 cases, so a fixed list of notes scored hit@5 0.72.
    note, most = Counter(g for c in cases for g in c.gold_sources).most_common(1)[0]
    assert most <= 0.15 * len(cases), f"{note} is gold in {most} of {len(cases)} cases"
    assert not [c.id for c in cases if set(c.gold_sources) & set(c.related_sources)]


def test_a_fixed_list_of_notes_scores_far_below_the_retriever_on_the_default_set():
    cases = load_cases(DEFAULT_SET)
    rows = [{"answerable": c.answerable, "gold_sources": list(c.gold_sources)} for c in cases]
    fixed = baselines(rows)["fixed_list"]
    assert len(fixed["sources"]) == FIXED_LIST_SIZE
    # The gate holds the real retriever at or above its hit@1 floor, so the baseline must sit well under it.
    floor = load_thresholds(ROOT / "evals" / "thresholds.toml")["default"]["extractive"]["hit@1"]
    assert fixed["metrics"]["hit@1"] < floor - 0.3
    assert fixed["metrics"]["hit@5"] < 0.5


def test_paraphrased_questions_do_not_reuse_a_note_sentence_s_words():
    cases = [c for c in load_cases(DEFAULT_SET) if "paraphrase" in c.tags]
    assert len(cases) >= 40
    assert all(c.answerable and c.key_facts for c in cases)
    sentences = _note_sentences()
    copied = []
    for case in cases:
        share, note, sentence = _closest(case.question, sentences)
        if share >= 0.6:
            copied.append(f"{case.id}: {share:.0%} of its content words are in {note}: {sentence[:100]!r}")
    assert not copied, "reword these questions as a reader would ask them:\n" + "\n".join(copied)


def test_near_misses_ask_what_no_note_gives_nor_admits_it_lacks():
    cases = [c for c in load_cases(DEFAULT_SET) if "near-miss" in c.tags]
    assert len(cases) >= 20
    assert all(not c.answerable and not c.key_facts and c.gold_sources for c in cases)  # gold: the on-topic note
    gaps = [(note, s) for note, s in _note_sentences() if _GAP.search(s)]
    assert len(gaps) > 30  # the pattern still finds the notes' own admissions
    covered = []
    for case in cases:
        share, note, sentence = _closest(case.question, gaps)
        if share >= 0.5:
            covered.append(f"{case.id}: {share:.0%} of its content words are in {note}: {sentence[:100]!r}")
    assert not covered, "these near misses ask about a gap a note states; pick a fact no note mentions:\n" + \
        "\n".join(covered)


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
    assert scores["answered_and_right"] == 0.0
    assert scores["citation_precision_answered"] == 0.5 and scores["faithfulness_answered"] == 0.5


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
    # Refusing an answerable case costs on every answer metric, or refusing the hard ones would pay.
    assert missed["citation_precision"] == 0.0 and missed["faithfulness"] == 0.0
    assert missed["answered_and_right"] == 0.0
    assert missed["citation_precision_answered"] is None and missed["faithfulness_answered"] is None
    assert missed["hit@1"] == 1.0  # retrieval is scored whether or not the answerer answered
    assert scores["answered_and_right"] is None  # the unanswerable case: not one it applies to


def test_answered_and_right_needs_every_key_fact_and_every_citation_supported():
    case = EvalCase(**dict(GOOD, key_facts=["15.9%"]))
    passage = "IC Insights said chips made in China covered 15.9% of the $143.4 billion market in 2020."
    sentence = "Chips made in China covered 15.9% of the market."
    right = _answer(sentence + " [1]", [(sentence, [1])], {1: ("a.md", passage)})
    assert score_case(case, right, ["a.md"], judge_answer(right, LexicalJudge()))["answered_and_right"] == 1.0
    wrong_fact = _answer("Chips covered 16.7% of the market [1].", [("Chips covered 16.7% of the market.", [1])],
                         {1: ("a.md", passage)})
    assert score_case(case, wrong_fact, ["a.md"], judge_answer(wrong_fact, LexicalJudge()))["answered_and_right"] == 0
    uncited = _answer(sentence, [(sentence, [])], {})
    assert score_case(case, uncited, ["a.md"], judge_answer(uncited, LexicalJudge()))["answered_and_right"] == 0.0
    no_facts = EvalCase(**dict(GOOD, key_facts=[]))  # nothing to find: the citations decide
    assert score_case(no_facts, right, ["a.md"], judge_answer(right, LexicalJudge()))["answered_and_right"] == 1.0


def test_citation_precision_and_faithfulness_average_over_refusals_too():
    case = EvalCase(**GOOD)
    passage = "Chips made in China covered 15.9% of the market."
    answered = _answer(passage + " [1]", [(passage, [1])], {1: ("a.md", passage)})
    refused = _answer("The indexed sources do not cover this question.", [], {}, refused=True)
    rows = []
    for i, answer in enumerate((answered, refused)):
        scores = score_case(case, answer, ["a.md"], judge_answer(answer, LexicalJudge()))
        rows.append({"id": f"c{i}", "answerer": "extractive", "answerable": True, "tags": [], "scores": scores,
                     "wall_s": 0.1, "error": "", "answer": answer})
    summary = summarize_rows(rows)
    for metric in ("citation_precision", "faithfulness", "answered_and_right"):
        assert summary["metrics"][metric] == 0.5 and summary["counts"][metric] == 2, metric
    assert summary["metrics"]["citation_precision_answered"] == 1.0
    assert summary["metrics"]["faithfulness_answered"] == 1.0


def test_answer_passage_hit_is_whether_the_answerer_was_given_a_gold_note():
    case = EvalCase(**dict(GOOD, gold_sources=["a.md"], related_sources=["timeline.md"]))
    text = "Chips made in China covered 15.9% of the market."
    given_gold = _answer(text + " [1]", [(text, [1])], {1: ("a.md", text)})
    assert "answer_passage_hit" in HEADLINE
    scores = score_case(case, given_gold, ["timeline.md"], [])
    assert scores["answer_passage_hit"] == 1.0 and scores["answer_passage_hit_answered"] == 1.0
    assert scores["hit@1"] == 0.0  # the deeper re-search is another matter
    given_related = _answer(text + " [1]", [(text, [1])], {1: ("timeline.md", text)})
    scores = score_case(case, given_related, ["a.md"], [])
    assert scores["answer_passage_hit"] == 0.0 and scores["hit@1"] == 1.0  # ranked first there, never handed over
    # A refusal still counts: its passages are what the answerer had, and missing gold is often why it refused.
    refused = _answer("The indexed sources do not cover this question.", [], {}, refused=True)
    refused["passages"] = [{"text": text, "source": "b.md"}, {"text": text, "source": "a.md"}]
    scores = score_case(case, refused, [], [])
    assert scores["answer_passage_hit"] == 1.0 and scores["answer_passage_hit_answered"] is None
    refused["passages"] = []
    assert score_case(case, refused, [], [])["answer_passage_hit"] == 0.0
    unanswerable = EvalCase(**dict(GOOD, id="u", answerable=False, key_facts=[], gold_sources=["a.md"]))
    assert score_case(unanswerable, given_gold, [], [])["answer_passage_hit"] is None
    assert m.source_hit(["b.md", "a.md", "a.md"], {"a.md"}) == 1.0 and m.source_hit([], {"a.md"}) == 0.0


def test_citation_precision_accepts_a_related_note_but_recall_and_retrieval_do_not():
    case = EvalCase(**dict(GOOD, gold_sources=["a.md"], related_sources=["timeline.md"]))
    text = "Chips made in China covered 15.9% of the market."
    cites_related = _answer(text + " [1]", [(text, [1])], {1: ("timeline.md", text)})
    scores = score_case(case, cites_related, ["timeline.md", "a.md"], judge_answer(cites_related, LexicalJudge()))
    assert scores["citation_precision"] == 1.0  # the related note states the fact: a right citation
    assert scores["citation_recall"] == 0.0 and scores["hit@1"] == 0.0 and scores["mrr"] == 0.5
    cites_other = _answer(text + " [1]", [(text, [1])], {1: ("other.md", text)})
    assert score_case(case, cites_other, [], judge_answer(cites_other, LexicalJudge()))["citation_precision"] == 0.0


def test_baselines_score_a_fixed_list_and_bm25_on_the_same_cases():
    def row(gold: list[str], bm25: list[str], answerable: bool = True) -> dict:
        return {"answerable": answerable, "gold_sources": gold, "bm25_sources": bm25}

    rows = [row(["a.md"], ["a.md", "b.md"]), row(["a.md"], ["c.md", "a.md"]), row(["b.md"], ["b.md"]),
            row(["c.md", "d.md"], []), row([], ["a.md"], answerable=False)]
    assert fixed_list(rows) == ["a.md", "b.md", "c.md", "d.md"]  # most common first, ties by name
    assert fixed_list(rows, size=1) == ["a.md"]
    base = baselines(rows, fixed=["a.md"])
    assert base["fixed_list"]["sources"] == ["a.md"]
    assert base["fixed_list"]["metrics"]["hit@1"] == 0.5 and base["fixed_list"]["metrics"]["mrr"] == 0.5
    assert base["bm25"]["metrics"]["hit@1"] == 0.5 and base["bm25"]["metrics"]["mrr"] == pytest.approx(0.625)
    assert base["bm25"]["metrics"]["recall@10"] == pytest.approx(0.75)
    # A row without BM25's ranking (its search failed) leaves the set without a BM25 row, not scored 0 on it.
    del rows[0]["bm25_sources"]
    assert "bm25" not in baselines(rows)
    assert baselines([])["fixed_list"]["metrics"]["hit@1"] is None  # no answerable case: n/a, not 0


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


def test_compare_shows_n_a_for_a_metric_with_no_cases():
    a = _summary({"hit@1": 0.5, "key_fact_recall": None})
    b = _summary({"hit@1": 0.5, "key_fact_recall": None, "answered_and_right": 0.4})
    rows = {line.split()[0]: line.split()[1:] for line in compare_summaries(a, b).splitlines() if line}
    assert rows["key_fact_recall"] == ["n/a", "n/a"]  # no bar, no 0.000, no delta
    assert rows["answered_and_right"] == ["–", "0.400"]  # A's summary predates the metric


def test_a_floor_on_a_metric_with_no_cases_is_reported_not_passed():
    summary = {**_summary({"hit@1": 0.9, "key_fact_recall": None}), "set": "../shared/evaldata/clapnq-dev/set.jsonl"}
    floors = {"clapnq-dev": {"extractive": {"hit@1": 0.8, "key_fact_recall": 0.5}}}
    assert check_thresholds(summary, floors) == [
        "clapnq-dev.extractive: key_fact_recall is n/a, no case of this set has what it needs (floor 0.500): "
        "remove the floor from [clapnq-dev.extractive] of the thresholds file, or add cases it applies to"]


def test_report_and_plots_show_n_a_not_zero(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from evals.report import plot_metric_bars, write_report

    rows = [_row("a", True, False, ["x"], None), _row("b", False, True, ["x"], None)]
    for r in rows:
        r.update(question="Q?", history=[], reference_answer="R.", key_facts=[], gold_sources=["a.md"],
                 found_key_facts=[], retrieved_sources=["a.md"], judgements=[])
        r["answer"].update(answer="An answer [1].", refused=r["scores"]["refused"] == 1.0, refusal_reason="",
                           query="Q?", citations=[])
    run = summarize_rows(rows)
    assert run["metrics"]["key_fact_recall"] is None and run["counts"]["key_fact_recall"] == 0
    summary = {"kind": "qa", "set": "set.jsonl", "cases": 2, "created": "now", "wall_s": 1.0,
               "runs": {"extractive": run}}
    text = write_report(tmp_path, summary, rows).read_text()
    assert "| key_fact_recall | n/a | 0 |" in text
    assert "| x | 2 | 1.000 | n/a |" in text  # the tag table: refusal accuracy, then answered_and_right

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    plot_metric_bars({"extractive": run}, ("refusal_accuracy", "key_fact_recall"), tmp_path / "bars.png", "t")
    ax = figures[0].axes[0]
    visible = [bar.get_height() for bar in ax.patches if bar.get_visible()]
    assert visible == [1.0]  # refusal accuracy only: no bar for the n/a metric
    assert sorted(t.get_text() for t in ax.texts) == ["1.00", "n/a"]


def test_thresholds_file_and_check(tmp_path):
    floors = load_thresholds(ROOT / "evals" / "thresholds.toml")
    assert set(floors) >= {"default", "hotpotqa-dev", "clapnq-dev"}
    assert set(floors["default"]["extractive"]) == set(HEADLINE)
    assert all(0.0 <= v <= 1.0 for runs in floors.values() for t in runs.values() for v in t.values())
    summary = {**_summary({"hit@1": 0.8, "faithfulness": 0.5}), "set": "evals/sets/default.jsonl"}
    mine = {"default": {"extractive": {"hit@1": 0.7, "faithfulness": 0.6, "mrr": 0.1}, "llm": {"hit@1": 0.99}},
            "hotpotqa-dev": {"extractive": {"hit@1": 0.99}}}
    failures = check_thresholds(summary, mine)
    assert failures[0] == "default.extractive: faithfulness 0.500 is below its floor 0.600"
    assert failures[1].startswith("default.extractive: mrr was not measured (floor 0.100): the run's summary has no "
                                  "such metric; check the name in [default.extractive]")
    assert len(failures) == 2
    # A public set's floors are filed under its folder's name, not "set".
    public = {**summary, "set": "../shared/evaldata/hotpotqa-dev/set.jsonl"}
    assert check_thresholds(public, mine) == ["hotpotqa-dev.extractive: hit@1 0.800 is below its floor 0.990"]
    flat = tmp_path / "flat.toml"
    flat.write_text('[extractive]\n"hit@1" = 0.5\n')
    with pytest.raises(ValueError, match=r"\[extractive\.extractive\]"):
        load_thresholds(flat)


def test_cli_registers_eval_and_compares(tmp_path, capsys):
    import cli

    for name, values in (("a", {"hit@1": 0.5}), ("b", {"hit@1": 0.25})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(_summary(values)))
    assert cli.main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "hit@1" in out and "-0.250" in out and "WORSE" in out
    assert "eval" in cli.COMMANDS
    assert cli.main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == cli.EXIT_ERROR


def test_cli_rejects_a_bad_set(tmp_path, capsys):
    import cli

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


def test_report_shows_the_baselines_and_the_paraphrase_and_near_miss_slices(tmp_path):
    from evals.report import write_report

    rows = [_row("p", True, False, ["paraphrase"], 1.0), _row("n", False, True, ["near-miss", "unanswerable"], None),
            _row("o", True, False, ["numeric"], 1.0)]
    for r, hit, bm25 in zip(rows, (1.0, None, 0.0), (["b.md", "a.md"], [], ["a.md"]), strict=True):
        r.update(question="Q?", history=[], reference_answer="R.", key_facts=["k"], gold_sources=["a.md"],
                 found_key_facts=[], retrieved_sources=["a.md"], judgements=[], bm25_sources=bm25)
        r["scores"]["hit@1"] = hit
        r["answer"].update(answer="An answer [1].", refused=r["scores"]["refused"] == 1.0, refusal_reason="",
                           query="Q?", citations=[])
    run = summarize_rows(rows)
    assert run["baselines"]["bm25"]["metrics"]["hit@1"] == 0.5
    summary = {"kind": "qa", "set": "default.jsonl", "cases": 3, "created": "now", "wall_s": 1.0,
               "runs": {"extractive": run}}
    text = write_report(tmp_path, summary, rows).read_text()
    assert "## Retrieval baselines (extractive)" in text
    assert "| metric | extractive run | BM25 alone | fixed list of 1 |" in text
    assert "| hit@1 | 0.500 | 0.500 | 1.000 |" in text  # the fixed list: the one gold note of every case
    assert "## Slices: paraphrased questions and near misses" in text
    section = text.split("## Slices", 1)[1].split("\n## ", 1)[0]
    slices = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    assert slices["paraphrase"].startswith("| paraphrase | 1 | 1.000 | n/a | 1.000 |")
    assert slices["paraphrase"].endswith("| 0.000 |")  # BM25 hit@1 on that slice
    assert slices["near-miss"].startswith("| near-miss | 1 | 1.000 | n/a | n/a |")
    assert slices["other"].startswith("| other | 1 | 1.000 | n/a | 0.000 |")


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
    # Retrieval only: the index keeps no sentence vectors, which only answers read.
    from evals.beir import beir_settings
    from index.manifest import Manifest

    manifest = Manifest(beir_settings(settings, beir, tmp_path / "cache").manifest_path)
    try:
        assert manifest.sentence_vectors([d[1] for d in docs.values()], 384) == {}
        assert manifest.get_meta("sentence_vectors") == ""
    finally:
        manifest.close()
    for mode in ("hybrid", "dense", "lexical"):
        assert summary["runs"][mode]["metrics"]["ndcg@10"] == pytest.approx(1.0)
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert {r["ranking"][0] for r in rows if r["id"] == "q1"} == {"d1"}
    again = run_beir(beir, settings, embedder, tmp_path / "out2", cache_dir=tmp_path / "cache", modes=("dense",),
                     write_report=False)
    assert again["index"]["cached"] is True


def test_report_shows_each_floor_beside_the_measured_value(tmp_path):
    from evals.report import _floors_section

    floors = tmp_path / "thresholds.toml"
    floors.write_text('[mini.extractive]\n"hit@1" = 0.9\n"refusal_accuracy" = 0.5\n', encoding="utf-8")
    summary = {"set": "evals/sets/mini.jsonl",
               "runs": {"extractive": {"metrics": {"hit@1": 0.8, "refusal_accuracy": 0.75}}}}
    text = "\n".join(_floors_section(summary, floors))
    assert "| extractive | hit@1 | 0.900 | 0.800 | **below** |" in text
    assert "| extractive | refusal_accuracy | 0.500 | 0.750 | ok |" in text
    assert "No floors" in "\n".join(_floors_section({"set": "other.jsonl", "runs": {"llm": {}}}, floors))
