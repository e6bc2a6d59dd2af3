"""Chains of sentences across passages: a sentence that names another passage's entity leads to that
passage, and the answer reads the steps in order ("the singer [1] -> her best-known single [2] -> its
producer [3]"). The extractive answerer asks here which pair answers best, which links to follow, and
whether a sentence from a third passage stands outside the chain.
"""

from __future__ import annotations

from assistant.reading.candidates import COVER_WEIGHT, Candidate, passage_context_words, title_key, weight
from assistant.reading.question import QuestionForm
from assistant.verification import PassageView

_PAIR_GAIN = 0.1
"""What a second sentence must add to the question's covered share to make a pair worth reading."""


def best_bridge(facts: list[Candidate], views: list[PassageView], form: QuestionForm,
                 weights: dict[str, float]) -> tuple[Candidate, Candidate, float] | None:
    """The best (bridge sentence, answer sentence) pair: the first names the entity whose passage holds
    the second, and together they cover more of the question than either alone."""
    titles = [title_key(v) for v in views]
    contexts = [passage_context_words(v) for v in views]
    total_weight = weight(form.words, weights, len(views)) or 1.0
    best: tuple[Candidate, Candidate, float] | None = None
    for answer in facts:
        key = titles[answer.passage]
        if not key or (form.typed and not answer.values):
            continue
        for bridge in facts:
            if bridge.passage == answer.passage or key not in bridge.lowered:
                continue
            words = bridge.words | answer.words | contexts[bridge.passage] | contexts[answer.passage]
            cover = weight(form.words & words, weights, len(views)) / total_weight
            if cover < max(bridge.in_context, answer.in_context) + _PAIR_GAIN:
                continue  # the second sentence must bring what the first leaves out of the question
            score = max(bridge.similarity, answer.similarity) + COVER_WEIGHT * cover + answer.type_bonus(form)
            if best is None or score > best[2]:
                best = (bridge, answer, score)
    if best is None:
        return None
    bridge, answer, score = best
    # Read as a chain: the bridge first, then the answer it leads to.
    return (bridge.at(0), answer.at(1), score)


def brings(candidate: Candidate, chosen: list[Candidate], form: QuestionForm) -> bool:
    """Whether ``candidate`` holds question words that the chosen sentences and their titles leave out."""
    covered = set().union(*(c.words | c.context for c in chosen))
    return bool(form.words & candidate.words - covered)


def followed(leading: list[Candidate], chosen: list[Candidate], facts: list[Candidate], views: list[PassageView],
              form: QuestionForm) -> list[Candidate]:
    """The links a chain of sentences asks to follow: for each passage whose entity a ``leading`` sentence
    names, and that no chosen sentence comes from, its best sentence that brings question words the answer
    so far leaves out (with a value of the asked kind, when the question asks for one).

    "The film stars A, B and C" leads to the passage on A; A's sentence that holds what was asked of the
    star is the answer's second step, however little it looks like the question as a whole.
    """
    titles = [title_key(v) for v in views]
    cited = {c.passage for c in chosen}
    # An entity the question names is where the chain starts, not a step along it.
    asked = " ".join(form.names).lower()
    found: list[Candidate] = []
    for n, title in enumerate(titles):
        if not title or n in cited or title in asked or not any(title in c.lowered for c in leading):
            continue
        steps = sorted((c for c in facts if c.passage == n and not c.off_year and brings(c, chosen, form)),
                       key=lambda c: -c.score)
        answering = [c for c in steps if c.values or not form.typed]
        if answering:
            found.append(answering[0])
            continue
        # No value here: a sentence that names the next entity is a step on to the passage that has one
        # ("the singer [1] -> her best-known single [2] -> its producer [3]"), up to the last passage.
        for step in steps:
            onward = followed([step], [*chosen, *found, step], facts, views, form)
            if onward:
                found += [step, *onward]
                break
    return found


def off_chain(candidate: Candidate, chosen: list[Candidate], views: list[PassageView]) -> bool:
    """Whether ``candidate`` stands outside a chain the answer follows: once the chosen sentences run from
    one passage to another that the first names, a sentence from a third passage that neither names
    nor is named by them is a near miss that shares the question's words ("the most popular band in the
    region" beside the band the film's star founded)."""
    titles = [title_key(v) for v in views]
    passages = {c.passage for c in chosen}
    texts = {c.passage: " ".join(o.lowered for o in chosen if o.passage == c.passage) for c in chosen}

    def names(a: int, b: int) -> bool:
        return bool(titles[b]) and titles[b] in texts.get(a, views[a].passage.chunk.text.lower())

    chain = any(names(a, b) for a in passages for b in passages if a != b)
    if not chain or candidate.passage in passages:
        return False
    own = views[candidate.passage].passage.chunk.text.lower()
    return not any(names(a, candidate.passage) or (titles[a] and titles[a] in own) for a in passages)
