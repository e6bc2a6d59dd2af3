"""The support judge behind citation precision and faithfulness: it must be able to say no.

Fast and model-free. The hand labels (``evals/sets/judge_labels.jsonl``) are sentence-passage pairs
written from the notes in ``sources/``; the judge is held to its measured agreement with them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evals.alignment_judge import AlignmentJudge, quantities
from evals.judge import LABELS, agreement, load_labels, passage_text
from evals.llm_judge import LexicalJudge
from evals.runner import judge_answer, summarize_rows

BIG_FUND = ("The third phase was established on 24 May 2024, according to Caixin, Yicai Global and TrendForce, "
            "with registered capital of RMB 344 billion, or about $47.5 billion. That reporting counted 19 "
            "shareholders. Among them, the Ministry of Finance held 17.44% and China Development Bank Capital "
            "held 10.47%.")
BUYERS = ("According to the same Register report, the series found that Chinese companies act in their own "
          "commercial interest and buy from trusted foreign suppliers; doubts about the quality of domestic "
          "products are a major reason.")
GAPS = ("Our sources do not say when the sanctions were imposed, which US agencies imposed them, which other "
        "CETC companies are covered or what the restrictions require.")


@pytest.fixture(scope="module")
def judge() -> AlignmentJudge:
    return AlignmentJudge()


def supported(judge: AlignmentJudge, sentence: str, passage: str) -> bool:
    return judge.judge(sentence, passage).supported


# Agreement with the hand labels -----------------------------------------------------------------


def test_the_labels_are_thirty_pairs_of_both_kinds():
    labels = load_labels()
    assert len(labels) == 30 and len({label.id for label in labels}) == 30
    assert 13 <= sum(label.supported for label in labels) <= 17
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (LABELS.parents[2] / "sources").glob("*.md"))
    flat = " ".join(re.sub(r"\[@[\w-]+(?:\s*;\s*@[\w-]+)*\]", " ", sources).split())  # citations are blanked
    gone = [label.id for label in labels if label.passage not in flat]
    assert not gone, f"labels {', '.join(gone)}: the passage is no longer in sources/; copy it again from the note"


def test_the_judge_agrees_with_at_least_27_of_the_30_hand_labels(judge):
    result = agreement(judge)
    assert result.total == 30
    assert result.agreed >= 27, f"{result.line}; wrong on {', '.join(result.disagreements)}"
    assert result.line == f"judge agreement with 30 hand labels: {result.agreed}/30"


def test_the_old_word_share_judge_agrees_with_fewer_labels(judge):
    assert agreement(LexicalJudge()).agreed < agreement(judge).agreed


def test_a_malformed_label_names_its_line(tmp_path: Path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"id": "x", "sentence": "s", "passage": "p", "supported": "yes", "why": "w"}) + "\n")
    with pytest.raises(ValueError, match=r"labels\.jsonl line 1"):
        load_labels(path)


# What must fail, and what must pass -------------------------------------------------------------


def test_a_changed_number_is_unsupported(judge):
    verdict = judge.judge("Among them, the Ministry of Finance held 14.47%.", BIG_FUND)
    assert not verdict.supported and verdict.missing_numbers == ("14.47%",)
    assert not supported(judge, "That reporting counted 21 shareholders.", BIG_FUND)


def test_a_changed_unit_or_currency_is_unsupported(judge):
    assert not supported(judge, "The third phase had registered capital of $344 billion.", BIG_FUND)
    assert not supported(judge, "The third phase had registered capital of RMB 344 million.", BIG_FUND)
    assert supported(judge, "The third phase had registered capital of 344 billion yuan.", BIG_FUND)
    assert supported(judge, "Its registered capital was about US$47,500 million.", BIG_FUND)


def test_an_added_negation_is_unsupported(judge):
    assert not supported(judge, "The series found that Chinese companies do not buy from trusted foreign suppliers.",
                         BUYERS)
    assert not supported(judge, "The series found that Chinese companies never buy from trusted foreign suppliers.",
                         BUYERS)


def test_a_dropped_negation_is_unsupported(judge):
    assert not supported(judge, "Our sources say when the sanctions were imposed.", GAPS)
    assert supported(judge, "The sources don't say which other CETC companies the sanctions cover.", GAPS)


def test_a_swapped_name_is_unsupported(judge):
    verdict = judge.judge("Among them, the Ministry of Commerce held 17.44%.", BIG_FUND)
    assert not verdict.supported and "commerce" in verdict.reason
    assert not supported(judge, "The third phase was established on 24 May 2024, according to Reuters.", BIG_FUND)


def test_a_figure_moved_to_another_subject_is_unsupported(judge):
    # Every word and number is in the passage, but each figure is about something else there.
    passage = ("According to that report, China's IC market was worth $143.4 billion, and chips manufactured in "
               "China were worth $22.7 billion, or 15.9% of the market. Of that $22.7 billion, companies "
               "headquartered in China accounted for $8.3 billion, which IC Insights put at 5.9% of the market.")
    assert not supported(judge, "Companies headquartered in China accounted for 15.9% of the market.", passage)
    assert supported(judge, "Companies headquartered in China accounted for 5.9% of the market.", passage)
    assert not supported(judge, "That reporting counted 17.44 shareholders.", BIG_FUND)


def test_an_exact_quote_is_supported(judge):
    verdict = judge.judge("That reporting counted 19 shareholders [2].", BIG_FUND)
    assert verdict.supported and verdict.word_share == 1.0 and verdict.reason == ""
    assert supported(judge, BUYERS, BUYERS)


def test_a_clause_of_the_passage_sentence_is_supported(judge):
    assert supported(judge, "Chinese companies act in their own commercial interest.", BUYERS)
    assert supported(judge, "doubts about the quality of domestic products are a major reason", BUYERS)
    assert supported(judge, "with registered capital of RMB 344 billion, or about $47.5 billion", BIG_FUND)


def test_a_paraphrase_with_numbers_written_otherwise_is_supported(judge):
    passage = ("A Vietnamese technology news site reported in 2021 that, under the bank's strategic innovation "
               "plan, it had lined up loans of more than $60 billion for upward of 1,000 key businesses.")
    assert supported(judge, "The bank lined up loans of more than $60 billion for over 1000 key businesses.",
                     passage)
    assert supported(judge, "Taiwan accounts for some 60 per cent of the world's semiconductors.",
                     "Chatham House said that Taiwan accounts for some 60% of the world's semiconductor production.")


def test_figures_keep_their_units():
    assert {(q.value, q.kind) for q in quantities("RMB 344 billion, or about $47.5 billion; 15.9 per cent")} == {
        ("344000000000", "cny"), ("47500000000", "usd"), ("15.9", "%")}
    assert {(q.raw, q.kind) for q in quantities("1,334 projects, the third phase, 5G")} == {
        ("1334", ""), ("3", "ord"), ("5", "")}


def test_a_quote_of_several_table_rows_is_supported(judge):
    table = ("| Phase | Set up | Size |\n|---|---|---|\n| I | 26 September 2014 | about RMB 138.7 billion raised |\n"
             "| II | 2019 | about RMB 204 billion raised |\n| III | 24 May 2024 | RMB 344 billion registered capital |")
    assert supported(judge, "| II | 2019 | about RMB 204 billion raised | | III | 24 May 2024 | RMB 344 billion "
                     "registered capital |", table)
    assert not supported(judge, "Phase II raised about RMB 204 billion in 2014.", table)


# Wiring: the default judge of a run, and its agreement in the report ---------------------------


def test_title_and_heading_are_context_not_a_sentence(judge):
    citation = {"title": "The Big Fund and state bank lending", "heading": "Big Fund phase III", "text": BIG_FUND}
    text = passage_text(citation)
    assert text.startswith("# The Big Fund and state bank lending\n## Big Fund phase III\n")
    assert supported(judge, "The third phase was established on 24 May 2024.", text)
    # Names must be in the passage sentence itself: nearly every title names China, and would
    # otherwise vouch for any sentence that puts China in another's place.
    assert not supported(judge, "The Big Fund's third phase was established on 24 May 2024.", text)


def test_judge_answer_and_the_report_line(tmp_path: Path, judge):
    from evals.report import write_report

    answer = {"answer": "x", "refused": False, "refusal_reason": "", "query": "q",
              "sentences": [{"text": "That reporting counted 19 shareholders.", "citations": [1]},
                            {"text": "That reporting counted 91 shareholders.", "citations": [1]}],
              "citations": [{"n": 1, "source": "a.md", "title": "T", "heading": "", "text": BIG_FUND}],
              "timings": {"retrieval_s": 0.01, "generation_s": 0.02, "first_token_s": 0.02, "verification_s": 0.01,
                          "total_s": 0.05}}
    judgements = judge_answer(answer, judge)
    assert [j["supported"] for j in judgements] == [True, False]

    row = {"id": "c", "answerer": "extractive", "answerable": True, "tags": ["x"], "wall_s": 0.1, "error": "",
           "scores": {"refused": 0.0, "refusal_accuracy": 1.0, "case_score": 1.0}, "answer": answer,
           "question": "Q?", "history": [], "reference_answer": "R.", "key_facts": [], "gold_sources": ["a.md"],
           "found_key_facts": [], "retrieved_sources": ["a.md"], "judgements": judgements}
    result = agreement(judge)
    summary = {"kind": "qa", "set": "set.jsonl", "cases": 1, "created": "now", "wall_s": 1.0,
               "judge": judge.name, "judge_agreement": result.as_dict(), "runs": {"extractive": summarize_rows([row])}}
    text = write_report(tmp_path, summary, [row]).read_text()
    assert f"agreement with 30 hand labels: {result.agreed}/30" in text


def test_eval_defaults_to_the_alignment_judge():
    import argparse

    from cli.evals import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert parser.parse_args(["eval"]).judge == "alignment"
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--judge", "lexical"])
