"""Answer candidates: the passage sentences that can stand in an answer, each with what the question's
form sees in it (how much of the question's weighted words it covers, values of the asked kind, whether
it states a gap in the sources). The extractive answerer ranks them; the second hop looks in them for
an answer of the asked kind before it searches again.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from assistant.reading.question import QuestionForm, answer_values, counts_unit
from assistant.text import years
from assistant.verification import PassageView, is_gap_statement
from index.sentences import Span
from index.words import content_words

COVER_WEIGHT = 0.5
TYPE_BONUS = 0.15


def term_weights(views: list[PassageView]) -> dict[str, float]:
    """Inverse passage frequency of each word among these passages: a word every passage holds
    tells the passages apart no better than a stop word."""
    frequency: dict[str, int] = {}
    for view in views:
        for word in view.words | passage_context_words(view):
            frequency[word] = frequency.get(word, 0) + 1
    total = len(views)
    return {word: math.log(1.0 + total / count) for word, count in frequency.items()}


def weight(words: frozenset[str] | set[str], weights: dict[str, float], total: int) -> float:
    # A question word no passage holds weighs the most: it is the question's most specific ask.
    return sum(weights.get(w, math.log(1.0 + total)) for w in words)


def passage_context_words(view: PassageView) -> set[str]:
    chunk = view.passage.chunk
    return content_words(f"{chunk.title} {chunk.heading}")


def answer_candidates(views: list[PassageView], form: QuestionForm,
                      weights: dict[str, float] | None = None) -> list[Candidate]:
    """Every passage sentence that can stand in an answer, with how much of the question it covers."""
    weights = term_weights(views) if weights is None else weights
    total_weight = weight(form.words, weights, len(views)) or 1.0
    out = []
    asked_years = years(" ".join(form.names) + " " + " ".join(form.words))
    on_year = _on_year(views, asked_years)
    for n, view in enumerate(views):
        context = passage_context_words(view)
        off_year = bool(asked_years) and n not in on_year
        for i, span in enumerate(view.spans):
            if not _answer_candidate(span.text):
                continue
            words = view.span_words[i]
            cover = weight(form.words & words, weights, len(views)) / total_weight
            in_context = weight(form.words & (words | context), weights, len(views)) / total_weight
            out.append(Candidate(n, n, span, frozenset(words), cover, in_context,
                                 tuple(answer_values(form, span.text)), is_gap_statement(span.text),
                                 frozenset(context), off_year,
                                 title=f"{view.passage.chunk.title} {view.passage.chunk.heading}",
                                 counted=counts_unit(form, span.text)))
    return out


def _on_year(views: list[PassageView], asked_years: set[str]) -> set[int]:
    """The passages that speak of an asked year, and those reached from one through a chain of names:
    in "the single of the singer born in 1970", 1970 is the singer's, and the single's passage, named
    by the singer's, need not repeat it."""
    texts = [f"{v.passage.chunk.title} {v.passage.chunk.text}" for v in views]
    on = {n for n, text in enumerate(texts) if asked_years & years(text)}
    titles = [title_key(v) for v in views]
    grown = True
    while grown:
        reached = {n for n, t in enumerate(titles) if n not in on and t and any(t in texts[m].lower() for m in on)}
        on |= reached
        grown = bool(reached)
    return on


def title_key(view: PassageView) -> str:
    """The passage's title as it would appear in another passage's text ("Varnholt (rowing club)" -> "varnholt")."""
    title = re.sub(r"\s*\([^)]*\)", "", view.passage.chunk.title or "").strip().lower()
    return title if len(title) >= 4 else ""


@dataclass(frozen=True)
class Candidate:
    """A passage sentence considered for the answer, with what the question's form sees in it."""

    passage: int
    """Index into the passages (0-based)."""
    order: int
    """Where it goes in the answer (reading order: passage order, or bridge before answer)."""
    span: Span
    words: frozenset[str]
    cover: float
    """Weighted share of the question's words in the sentence."""
    in_context: float
    """The same, counting the passage's title and heading as part of the sentence."""
    values: tuple[str, ...]
    """Values of the asked kind (names, times, figures) the question does not name."""
    gap: bool
    """The sentence says what the sources leave out."""
    context: frozenset[str] = frozenset()
    """Content words of the passage's title and heading."""
    off_year: bool = False
    """The question names a year its passage never mentions ("in 2020", and the passage is about 2019)."""
    similarity: float = 0.0
    score: float = 0.0
    title: str = ""
    counted: bool = False
    """A figure of what a "how many" question counts ("two-time" for "how many times")."""

    @property
    def key(self) -> tuple[int, int]:
        return (self.passage, self.span.start)

    @property
    def lowered(self) -> str:
        return self.span.text.lower()

    @property
    def lexical(self) -> float:
        return self.in_context + 0.35 * self.cover

    @property
    def context_text(self) -> str:
        return f"{self.title} {self.span.text}".lower()

    def type_bonus(self, form: QuestionForm) -> float:
        if form.kind == "entity":
            # "what language": often a name, not always
            return TYPE_BONUS / 2 if self.values or self.gap else 0.0
        if not form.typed:
            return 0.0
        if self.counted:
            # Asked "how many times", "two-time" answers it; "nine seasons", another count, does not.
            return 2 * TYPE_BONUS
        # "The report gives no figure" answers a "how much" question as squarely as a figure would: the
        # sources' own word that the value asked for is missing, so it ranks as a value of the kind does.
        return TYPE_BONUS if self.values or self.gap else -TYPE_BONUS

    def scored(self, similarity: float, form: QuestionForm) -> Candidate:
        score = similarity + COVER_WEIGHT * self.in_context + self.type_bonus(form) - 0.01 * self.passage
        if self.off_year:
            score -= TYPE_BONUS
        return _replace(self, similarity=similarity, score=score)

    def at(self, order: int) -> Candidate:
        return _replace(self, order=order - 1000)


def _replace(c: Candidate, **changes: object) -> Candidate:
    return replace(c, **changes)  # type: ignore[arg-type]


# A sentence that speaks of the document it stands in ("This article is about ...", "the items in this
# section ...") describes the text, not the world: a demonstrative and a noun naming a kind of text.
# Nouns for a text's findings ("this study", "this report") stay out: their sentences state findings.
_SELF_REFERENCE = re.compile(r"\b(this|the present) (note|article|page|section|chapter|entry|document|summary)\b",
                             re.I)


def _answer_candidate(text: str) -> bool:
    """Whether a passage sentence can stand in an answer: not a scrap, a table row or a remark on its own document."""
    text = clean_sentence(text)
    return (
        len(text) >= 25
        and not text.startswith("|")
        and not _SELF_REFERENCE.search(text)
    )


def clean_sentence(text: str) -> str:
    """A passage sentence as prose: no hard wraps, list bullets or bold markers."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^([-*•]|\d+\.)\s+", "", text)
    text = re.sub(r"^\*\*[^*]{1,80}\*\*\s*[-–—:]?\s*", "", text)  # "**2014 and 2020.** ..." lead-ins
    return text.replace("**", "")
