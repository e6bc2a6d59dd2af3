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
from assistant.candidates import (
    COVER_WEIGHT,
    Candidate,
    answer_candidates,
    clean_sentence,
    passage_context_words,
    term_weights,
    title_key,
    weight,
)
from assistant.followup import contextual_query
from assistant.passage import Passage
from assistant.question import QuestionForm, question_form
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

        pair = _best_bridge(facts, views, form, weights)
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
        if pair is not None and pair[1].key not in {c.key for c in chosen} and _brings(pair[1], chosen, form):
            # The best single sentence leaves out part of the question, and a chain (a sentence naming an
            # entity, then that entity's passage) brings it: both steps follow the best sentence.
            chosen += [replace(c, order=c.passage) for c in pair[:2] if c.key not in {o.key for o in chosen}]
        top = max(c.score for c in chosen)
        # Each part of a two-part question may need a sentence of its own, typed or not.
        typed = form.typed and form.parts == 1
        margin = self.typed_margin if typed else self.extra_margin
        limit = self.max_sentences + (2 if form.kind == "list" else 0)
        chosen += _followed(chosen, chosen, facts, views, form)
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
            if not wanted and _off_chain(c, chosen, views):
                continue
            if any(_repeats(c.span.text, o.span.text, float(vector(c) @ vector(o))) for o in chosen):
                continue
            chosen.append(c)
            chosen += _followed([c], chosen, facts, views, form)
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


def _best_bridge(facts: list[Candidate], views: list[PassageView], form: QuestionForm,
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


def _brings(candidate: Candidate, chosen: list[Candidate], form: QuestionForm) -> bool:
    """Whether ``candidate`` holds question words that the chosen sentences and their titles leave out."""
    covered = set().union(*(c.words | c.context for c in chosen))
    return bool(form.words & candidate.words - covered)


def _followed(leading: list[Candidate], chosen: list[Candidate], facts: list[Candidate], views: list[PassageView],
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
        steps = sorted((c for c in facts if c.passage == n and not c.off_year and _brings(c, chosen, form)),
                       key=lambda c: -c.score)
        answering = [c for c in steps if c.values or not form.typed]
        if answering:
            found.append(answering[0])
            continue
        # No value here: a sentence that names the next entity is a step on to the passage that has one
        # ("the singer [1] -> her best-known single [2] -> its producer [3]"), up to the last passage.
        for step in steps:
            onward = _followed([step], [*chosen, *found, step], facts, views, form)
            if onward:
                found += [step, *onward]
                break
    return found


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


def _off_chain(candidate: Candidate, chosen: list[Candidate], views: list[PassageView]) -> bool:
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


_PAIR_GAIN = 0.1
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
