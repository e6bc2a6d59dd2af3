"""The extractive answerer: quotes the passage sentences that answer the question, no LLM.

A sentence is chosen for holding an answer, not for looking like the question:

- the question's form says what kind of value answers it (a person, a time, a number, one of two
  options ...), and a sentence holding a value of that kind, not already named in the question,
  ranks above one that only repeats the question's words;
- the question's words are weighted by how few of the passages hold them, and a sentence scores by
  the share of that weight it covers, with its passage's title and heading (a sentence seldom
  repeats the name of the thing its article is about);
- a question that goes through a bridge ("the director of the film shot in Varnholt") is answered by
  two sentences: one that names the bridge entity, and one from the passage about that entity. The
  chain follows the best single sentence when that sentence leaves part of the question out, and a kept
  sentence that names another passage's entity brings that passage's sentence holding what is asked;
- the passages answer when the best answer's score, plus the best passage's relevance, plus twice the
  closest sentence's similarity to the question, reaches ``answerable``; below it the draft says the
  passages do not answer, and the pipeline refuses. A near miss is on topic (its passages are relevant)
  but no sentence of them comes close to what is asked. (Weights and bar chosen on one half of a public
  set of near misses, confirmed on the other: evals/README.md.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from assistant.answer import Turn
from assistant.followup import contextual_query
from assistant.passage import Passage
from assistant.reading.candidates import (
    Candidate,
    answer_candidates,
    clean_sentence,
    term_weights,
    title_key,
    weight,
)
from assistant.reading.chains import best_bridge, brings, followed, off_chain
from assistant.reading.question import QuestionForm, question_form
from assistant.sentence_vectors import SentenceVectors
from assistant.text import numbers, years
from assistant.verification import PassageView, Verifier
from index.sentences import Span
from index.words import content_words

NO_ANSWER = "The passages do not answer this question: none holds {what} about what it asks."
_WHAT = {"person": "a name", "place": "a place", "time": "a date", "number": "a figure", "choice": "either option"}


class ExtractiveAnswerer:
    """Answers with the passages' own sentences (or clauses of them) that answer the question."""

    name = "extractive"

    def __init__(self, verifier: Verifier, vectors: SentenceVectors, max_sentences: int = 4, floor: float = 0.55,
                 answerable: float = 2.43, closeness: float = 2.0, gap_margin: float = 0.12, shortlist: int = 16,
                 typed_margin: float = 0.3, extra_margin: float = 0.5, title_bar: float = 0.45) -> None:
        self.verifier = verifier
        # A question with no typed ask is answered by a passage whose title names all it names and reads
        # this near it: the title states what the note is about (chosen on the default set).
        self.title_bar = title_bar
        self.vectors = vectors
        self.max_sentences = max_sentences
        self.floor = floor
        self.answerable = answerable
        self.closeness = closeness
        self.gap_margin = gap_margin
        self.shortlist = shortlist
        self.typed_margin = typed_margin
        self.extra_margin = extra_margin

    def standalone_query(self, question: str, history: Sequence[Turn]) -> str:
        return contextual_query(question, history)

    def passages_for_prompt(self, query: str, passages: list[Passage]) -> list[Passage]:
        """Every passage: the answerer reads them all (the [n] markers number this list)."""
        return passages

    def draft(self, question: str, query: str, passages: list[Passage]) -> Iterator[str]:
        chosen = self.select(question, query, passages)
        if not chosen and passages:
            form = question_form(question if question != query else query)
            yield NO_ANSWER.format(what=_WHAT.get(form.kind, "a sentence")) + "\n"
            return
        for sentence, n in chosen:
            text = clean_sentence(sentence.text)
            # A blank line between quotes: the verifier must read each alone, even one that starts in
            # lower case ("born 28 May ...") or ends without a full stop (a clause, a cut sentence).
            yield f"{text} [{n}]\n\n" if text[-1:] in ".!?\"'”’)" else f"{text} [{n}].\n\n"

    def select(self, question: str, query: str, passages: list[Passage]) -> list[tuple[Span, int]]:
        """Chosen sentences (or clauses) with their passage number (from 1), in reading order."""
        reading = self.read(question, query, passages)
        return [(c.span, c.passage + 1) for c in reading]

    def read(self, question: str, query: str, passages: list[Passage]) -> list[Candidate]:
        """The candidates that make the answer, in reading order; empty when none answers."""
        views = self.verifier.views(passages)
        # A follow-up ("and in 2014?") is read in full, as it was searched; its own form ("when", "how
        # many") still says what kind of answer it wants.
        form = question_form(query)
        if question != query:
            form = replace(form, kind=question_form(question).kind) if question_form(question).kind != "description" \
                else form
        weights = term_weights(views)
        candidates = answer_candidates(views, form, weights)
        if not candidates:
            return []
        candidates = self._shortlisted(candidates, views)
        vectors = self.vectors.encode([c.span.text for c in candidates])
        query_vector = self.vectors.encode([query])[0]
        similarity = vectors @ query_vector
        scored = [c.scored(float(similarity[i]), form) for i, c in enumerate(candidates)]

        gaps = [c for c in scored if c.gap]
        facts = [c for c in scored if not c.gap]
        best_gap = max(gaps, key=lambda c: c.score, default=None)
        best_fact = max(facts, key=lambda c: c.score, default=None)
        if best_gap is not None and best_gap.score >= self.floor and (
                best_fact is None or best_gap.score >= best_fact.score + self.gap_margin):
            # The clearly best match says the sources are silent on the point: pass that on, not weaker
            # neighbours. (A gap statement only a little ahead is often a caveat beside the real answer.)
            return [best_gap]
        if best_fact is None:
            return []
        index = {c.key: i for i, c in enumerate(scored)}

        def vector(c: Candidate) -> np.ndarray:
            return vectors[index[c.key]]

        pair = best_bridge(facts, views, form, weights)
        # Asked about 2020, a passage on 2019 is a near miss, not an answer.
        answering = [c for c in facts if (c.values or not form.typed) and not c.off_year]
        best = max(answering, key=lambda c: c.score, default=None)
        relevance = max(p.relevance for p in passages)
        if pair is not None and (best is None or pair[2] > best.score):
            chosen, score = [pair[0], pair[1]], pair[2]
        elif best is not None:
            chosen, score = [best], best.score
        else:
            return []
        closest = max(c.similarity for c in facts)
        stated = self._titles_stating(query, form, passages)
        titled = max(stated, default=0.0) >= self.title_bar and not form.typed
        if score + relevance + self.closeness * closest < self.answerable and not titled:
            return []
        if pair is not None and pair[1].key not in {c.key for c in chosen} and brings(pair[1], chosen, form):
            # The best single sentence leaves out part of the question, and a chain (a sentence naming an
            # entity, then that entity's passage) brings it: both steps follow the best sentence.
            chosen += [replace(c, order=c.passage) for c in pair[:2] if c.key not in {o.key for o in chosen}]
        top = max(c.score for c in chosen)
        # Each part of a two-part question may need a sentence of its own, typed or not.
        typed = form.typed and form.parts == 1
        margin = self.typed_margin if typed else self.extra_margin
        limit = self.max_sentences + (2 if form.kind == "list" else 0)
        chosen += followed(chosen, chosen, facts, views, form)
        for c in sorted(facts, key=lambda c: -c.score):
            if len(chosen) >= limit:
                break
            wanted = _missing_option(form, chosen, c)
            if not wanted and (c.score < top - margin or c.score < self.floor):
                continue
            if c.key in {o.key for o in chosen} or (typed and not c.values) or c.off_year:
                continue
            if not wanted and not _adds_to(c, chosen, form, weights, len(views)):
                continue
            if not wanted and off_chain(c, chosen, views):
                continue
            if any(_repeats(c.span.text, o.span.text, float(vector(c) @ vector(o))) for o in chosen):
                continue
            chosen.append(c)
            chosen += followed([c], chosen, facts, views, form)
        chosen = [_trimmed(c, form) for c in chosen[:limit]]
        chosen += _list_items(chosen, views)
        chosen += _referents(chosen, views)
        return sorted(chosen, key=lambda c: (c.order, c.span.start))

    def _titles_stating(self, query: str, form: QuestionForm, passages: list[Passage]) -> list[float]:
        """How near the question each passage title is that names everything the question names (its
        names and years): "The CETC-Potevio merger (2021): Potevio becomes a wholly owned subsidiary of
        CETC" states what happened to Potevio in 2021, though no one sentence of the note says it whole.
        The indexer stores the titles' vectors with the sentences'."""
        anchor = content_words(" ".join(form.names)) | years(" ".join(form.names) + " " + " ".join(form.words))
        if not anchor:
            return []
        titles = list(dict.fromkeys(p.chunk.title for p in passages
                                    if p.chunk.title and anchor <= content_words(p.chunk.title) | years(p.chunk.title)))
        if not titles:
            return []
        return [float(v) for v in self.vectors.encode(titles) @ self.vectors.encode([query])[0]]

    def _shortlisted(self, candidates: list[Candidate], views: list[PassageView]) -> list[Candidate]:
        """Embedding every sentence of every passage is what made an answer slow (~10 ms a sentence on one
        core): only the sentences covering most of the question, and the bridge sentences, are embedded."""
        if len(candidates) <= self.shortlist:
            return candidates
        ranked = sorted(candidates, key=lambda c: -(c.lexical - 0.01 * c.passage))
        keep = ranked[: self.shortlist]
        titles = [title_key(v) for v in views]
        rest = ranked[self.shortlist:]
        # A bridge question's answer sits in the passage about an entity another passage names: keep the
        # sentences that name a passage's entity, and that passage's best sentences, whatever their words.
        bridges = [c for c in rest if any(t and n != c.passage and t in c.lowered for n, t in enumerate(titles))]
        named = {n for n, t in enumerate(titles) for c in keep + bridges if t and n != c.passage and t in c.lowered}
        linked = [c for n in sorted(named) for c in [x for x in rest if x.passage == n][:2]]
        keep += bridges[: self.shortlist // 2] + linked[: self.shortlist // 2]
        return sorted(dict.fromkeys(keep), key=lambda c: (c.passage, c.span.start))


def _missing_option(form: QuestionForm, chosen: list[Candidate], candidate: Candidate) -> bool:
    """For "X or Y?", whether ``candidate`` brings the option the chosen sentences leave out."""
    if form.kind != "choice":
        return False
    have = {v.lower() for c in chosen for v in c.values}
    return any(v.lower() not in have for v in candidate.values)


def _adds_to(candidate: Candidate, chosen: list[Candidate], form: QuestionForm, weights: dict[str, float],
             passages: int) -> bool:
    """Whether an added sentence belongs in the answer: from a passage already cited, on the same
    subject; from another passage, only when it covers part of the question the answer so far leaves
    out (a sentence from another article that shares one name with the question is not about it)."""
    covered = set().union(*(c.words | c.context for c in chosen))
    total = weight(form.words, weights, passages) or 1.0
    fresh = weight(form.words & (candidate.words | candidate.context) - covered, weights, passages) / total
    best = max(c.in_context for c in chosen)
    if candidate.passage in {c.passage for c in chosen}:
        return candidate.in_context >= 0.5 * best or fresh > 0
    return fresh >= _FRESH_COVER or candidate.in_context >= _OTHER_PASSAGE_COVER * best


def _list_items(chosen: list[Candidate], views: list[PassageView]) -> list[Candidate]:
    """The items that follow a chosen sentence ending in a colon ("... in three ways:"), in its passage."""
    items: list[Candidate] = []
    for c in chosen:
        if not c.span.text.rstrip().endswith(":"):
            continue
        view = views[c.passage]
        following = [s for s in view.spans if s.start > c.span.start][:_LIST_ITEMS]
        items += [replace(c, span=s, words=frozenset(content_words(s.text)), values=()) for s in following]
    return items


_FRESH_COVER = 0.15
_OTHER_PASSAGE_COVER = 0.8
_LIST_ITEMS = 6


def _trimmed(candidate: Candidate, form: QuestionForm) -> Candidate:
    """A long sentence cut to its clause that holds the answer, when one clause holds it all.

    Clauses are the pieces between semicolons and dashes: each reads on its own, and the verifier
    accepts a clause of a passage sentence as a quotation of it.
    """
    text = candidate.span.text
    if len(text.split()) < 30:
        return candidate
    pieces = [m for m in re.finditer(r"[^;—–]+", text) if len(m.group(0).split()) >= 6]
    if len(pieces) < 2:
        return candidate
    values = [v.lower() for v in candidate.values]

    def fit(m: re.Match[str]) -> tuple[int, int]:
        piece = m.group(0).lower()
        return (sum(v in piece for v in values), len(form.words & content_words(piece)))

    best = max(pieces, key=fit)
    if values and fit(best)[0] == 0:
        return candidate
    if len(form.words & content_words(best.group(0))) < len(form.words & candidate.words) // 2:
        return candidate
    raw = best.group(0)
    start = candidate.span.start + best.start() + (len(raw) - len(raw.lstrip()))
    piece = raw.strip().rstrip(",")
    return replace(candidate, span=Span(start, start + len(piece), piece))


def _referents(chosen: list[Candidate], views: list[PassageView]) -> list[Candidate]:
    """The sentence before each chosen one that opens by pointing back ("It reported that ...", "The
    survey was translated ..." after "The Brannock coastal survey listed ..."): quoted with it, so the
    reader sees who "it" is without opening the passage."""
    keys = {c.key for c in chosen}
    added: list[Candidate] = []
    for c in chosen:
        before = [s for s in views[c.passage].spans if s.end <= c.span.start]
        if not before or (c.passage, before[-1].start) in keys or not _points_back(c.span.text, before[-1].text):
            continue
        keys.add((c.passage, before[-1].start))
        added.append(replace(c, span=before[-1], values=(), gap=False))
    return added


def _points_back(sentence: str, previous: str) -> bool:
    """Whether ``sentence`` opens with a pronoun, or with "the X" where X is a word of ``previous``."""
    first = re.match(r"\W*(\w+)(?:\s+(\w+))?", sentence)
    if first is None:
        return False
    word, after = first.group(1), first.group(2) or ""
    if word.lower() in _POINTING:
        return True
    return word.lower() == "the" and after.islower() and len(after) > 3 and \
        re.search(rf"\b{re.escape(after)}\b", previous, re.IGNORECASE) is not None


# Pronouns and demonstratives that open a sentence by pointing back to the one before it.
_POINTING = frozenset(["it", "its", "they", "their", "them", "he", "his", "she", "her", "this", "these", "those"])


def _repeats(a: str, b: str, similarity: float) -> bool:
    """Whether sentence ``a`` says again what ``b`` said (near-same meaning, or same figures and words)."""
    if similarity > 0.85:
        return True
    words_a, words_b = content_words(a), content_words(b)
    jaccard = len(words_a & words_b) / max(1, len(words_a | words_b))
    shared_numbers = numbers(a) and numbers(a) <= numbers(b)
    return similarity > 0.6 and (jaccard > 0.4 or bool(shared_numbers))
