"""Check every sentence of a draft answer against the passages, and fix its citations.

A model's citations are never taken as they are. Each sentence is scored against each
passage: embedding similarity to the passage's closest sentence, plus the share of the
sentence's content words the passage contains; a sentence with a number the passage does
not contain gets no support from it. Then a correct citation is kept, a wrong one is moved
to the passage that does support the sentence, and a sentence nothing supports is dropped
(or kept and marked, by setting).

A draft is verified whole (``Verifier.verify``) or sentence by sentence while it is written
(``Verifier.start``, then ``Verification.add``); both run the same checks and end with the same verdict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.answer import AnswerSentence, Citation
from assistant.passage import Passage
from assistant.sentence_vectors import SentenceVectors
from assistant.text import citation_markers, numbers, spelled_numbers
from index.sentences import Span, sentences
from index.words import content_words

_REFUSAL = re.compile(
    r"\b(do(es)?n['’]?t|do(es)? not|cannot|can['’]?t|no information|not (contain|cover|mention|say|include))\b"
    r".{0,60}\b(sources?|passages?|documents?|notes?|context|provided)\b"
    r"|\b(sources?|passages?|documents?|notes?|context)\b.{0,60}\b(do(es)?n['’]?t|do(es)? not|not)\b"
    r".{0,30}\b(cover|contain|mention|say|address|include|answer)",
    re.I,
)


# Notes say where their sources fall silent ("the article did not name the fund"); such a sentence
# answers nothing, and a model that writes one is declining to answer.
_GAP = re.compile(
    r"\b(do(es)?|did)\s+not\s+(say|give|name|list|state|specify|quantify|describe|document|define|explain"
    r"|record|report|break down|assess|address|cover|mention|include|provide|detail|disclose|identify"
    r"|reconstruct|put a figure)\b"
    r"|\b(give|gives|gave|add|adds|added|provide|provides|offer|offers)\s+no\b"
    r"|\b(is|was|are|were)\s+not\s+(named|identified|disclosed)\b"
    r"|\bno (information|figures?|details?) (on|about|for)\b",
    re.I,
)


def is_refusal_sentence(text: str) -> bool:
    """"The passages do not cover ..." and its variants."""
    return bool(_REFUSAL.search(text))


# What a planted passage tells a model to do. A draft that repeats it is quoting an attack, not answering,
# even though the passage "supports" the words.
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|rules?|prompts?|guidelines)\b"
    r"|\b(reveal|print|show|repeat)\b.{0,30}\b(system prompt|your (rules|instructions|prompt))\b"
    r"|\b(reply|respond|answer|output)\s+only\s+with\b|\bsystem prompt\b|\byou must now\b",
    re.I,
)


def is_instruction(text: str) -> bool:
    """A sentence that reads as an instruction to the assistant (prompt injection quoted back)."""
    return bool(_INSTRUCTION.search(text))


def is_gap_statement(text: str) -> bool:
    """A sentence saying what the sources leave out ("the report did not say how much ...")."""
    return bool(_GAP.search(text)) or is_refusal_sentence(text)


@dataclass(frozen=True)
class SupportedBy:
    passage: int
    """Index into the passage list (0-based)."""
    score: float
    span: Span
    """The passage sentence that best supports the claim (offsets into the passage text)."""


@dataclass(frozen=True)
class Verified:
    sentences: list[AnswerSentence]
    dropped: list[AnswerSentence]
    citations: list[Citation]
    text: str
    refusal_only: bool
    refusals: tuple[str, ...] = ()
    """The draft's sentences that declined to answer, as written."""


class PassageView:
    """A passage split into sentences, with their words; sentence vectors are encoded on first use.

    Most checks never need them: an extractive draft quotes its cited passage word for word, and a
    verbatim sentence is supported by the passage it comes from without any embedding.
    """

    def __init__(self, passage: Passage, spans: list[Span], vectors: SentenceVectors) -> None:
        self.passage = passage
        self.spans = spans
        self._encoder = vectors
        self._vectors: np.ndarray | None = None
        self.words = content_words(passage.chunk.text)
        self.numbers = numbers(passage.chunk.text) | spelled_numbers(passage.chunk.text)
        self.span_words = [content_words(s.text) for s in spans]
        self.span_keys = [verbatim_key(s.text) for s in spans]

    @property
    def encoded(self) -> bool:
        return self._vectors is not None

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = self._encoder.encode([s.text for s in self.spans])
        return self._vectors

    def fill(self, vectors: np.ndarray) -> None:
        """Take vectors encoded together with other passages' sentences (one row per span)."""
        self._vectors = vectors

    def quoted(self, claim: str) -> int | None:
        """The sentence ``claim`` repeats word for word (case and punctuation aside), if any.

        A whole clause of a sentence counts too: a run of at least six words that starts where the
        sentence or one of its clauses starts (after a semicolon, dash or colon) and ends where one ends.
        """
        key = verbatim_key(claim)
        words = key.split()
        if len(words) < 4:
            return None
        exact = next((n for n, k in enumerate(self.span_keys) if k == key), None)
        if exact is not None or len(words) < 6:
            return exact
        pattern = re.compile(r"(?:^|[;:—–])\W*" + r"\W+".join(map(re.escape, words))
                             + r"\W*(?:$|[;:—–.])", re.I)
        return next((n for n, (span, k) in enumerate(zip(self.spans, self.span_keys, strict=True))
                     if key in k and pattern.search(span.text)), None)


def verbatim_key(text: str) -> str:
    """Words only, lower case: two sentences with the same key say the same thing in the same words."""
    return " ".join(re.findall(r"\w+", text.lower()))


class Verifier:
    """Scores claims against passages. One per process; reads sentence vectors through the shared cache."""

    def __init__(self, vectors: SentenceVectors, threshold: float = 0.55) -> None:
        self.vectors = vectors
        self.threshold = threshold

    def views(self, passages: list[Passage]) -> list[PassageView]:
        """Each passage split into sentences (vectors follow when first asked for)."""
        return [
            PassageView(p, list(sentences(p.chunk.text)) or [Span(0, len(p.chunk.text), p.chunk.text)], self.vectors)
            for p in passages
        ]

    def _encode(self, views: list[PassageView]) -> None:
        """Encode the sentences of every view that lacks vectors, in one batch."""
        pending = [view for view in views if not view.encoded]
        if not pending:
            return
        vectors = self.vectors.encode([s.text for view in pending for s in view.spans])
        offset = 0
        for view in pending:
            view.fill(vectors[offset : offset + len(view.spans)])
            offset += len(view.spans)

    def support(self, claim: str, claim_vector: np.ndarray | None, view: PassageView, index: int) -> SupportedBy:
        """How well one passage supports one claim, in [0, 1].

        ``claim_vector`` may be None only when the passage quotes the claim word for word.
        """
        quoted = view.quoted(claim)
        if quoted is not None:
            return SupportedBy(index, 1.0, view.spans[quoted])
        if claim_vector is None:
            raise ValueError("a claim the passage does not quote needs its vector")
        words = content_words(claim)
        claim_numbers = numbers(claim)
        similarities = view.vectors @ claim_vector
        best, best_score = 0, -1.0
        for n, span_words in enumerate(view.span_words):
            local = len(words & span_words) / len(words) if words else 0.0
            score = 0.5 * float(similarities[n]) + 0.5 * local
            if score > best_score:
                best, best_score = n, score
        overlap = len(words & view.words) / len(words) if words else 0.0
        score = 0.5 * float(similarities.max(initial=0.0)) + 0.5 * overlap
        if claim_numbers - view.numbers:
            score = min(score, 0.0)  # a figure the passage does not contain is not supported by it
        return SupportedBy(index, max(0.0, min(1.0, score)), view.spans[best])

    def start(self, passages: list[Passage], *, unsupported: str = "drop") -> Verification:
        """A verification of a draft whose [n] markers number ``passages`` from 1, fed its sentences as they
        are written (``Verification.add``)."""
        return Verification(self, passages, unsupported)

    def verify(self, draft: str, passages: list[Passage], *, unsupported: str = "drop") -> Verified:
        """Verify a draft whose [n] markers number ``passages`` from 1."""
        verification = self.start(passages, unsupported=unsupported)
        # One batch: a draft that arrives whole has its claims encoded in one model call.
        verification.add([span.text for span in sentences(draft)])
        return verification.result()


class Verification:
    """One draft under verification, given its sentences in order, a batch at a time.

    A streamed answer shows each sentence once it is verified, while the rest is still being written.
    Everything that depends on what came before lives here: citation numbers in order of first
    appearance, and what was kept, dropped or declined; so a draft verified in pieces ends exactly as
    the same draft verified whole.
    """

    def __init__(self, verifier: Verifier, passages: list[Passage], unsupported: str = "drop") -> None:
        self.verifier = verifier
        self.passages = passages
        self.unsupported = unsupported
        self.kept: list[AnswerSentence] = []
        self.refusals: list[str] = []
        self._injected: list[AnswerSentence] = []
        self._unsupported: list[AnswerSentence] = []
        self._claimed = False
        self._views: list[PassageView] | None = None
        self._numbering: dict[int, int] = {}  # passage index -> final citation number
        self._spans: dict[int, list[Span]] = {}  # passage index -> its supporting spans, in order

    @property
    def citations(self) -> list[Citation]:
        """The citations of the sentences kept so far, by number (a number, once given, never changes)."""
        citations = []
        for index, n in sorted(self._numbering.items(), key=lambda item: item[1]):
            chunk = self.passages[index].chunk
            spans = tuple((chunk.start + s.start, chunk.start + s.end) for s in self._spans[index])
            citations.append(Citation(n, self.passages[index], *spans[0], spans=spans))
        return citations

    def add(self, sentences_: Sequence[str]) -> list[AnswerSentence]:
        """Verify the next sentences of the draft (as written, with their markers); the ones kept."""
        claims: list[tuple[str, tuple[int, ...]]] = []
        for sentence in sentences_:
            text, cited = citation_markers(sentence)
            if not text or not re.search(r"[A-Za-z]{3}", text):
                continue
            if is_instruction(text):
                self._injected.append(AnswerSentence(text, (), 0.0, "unsupported", cited))
                continue
            if is_gap_statement(text):
                self.refusals.append(text)
                continue
            claims.append((text, cited))
        if not claims:
            return []
        self._claimed = True
        verifier = self.verifier
        if self._views is None:
            self._views = verifier.views(self.passages)
        views = self._views

        def cited_views(cited: tuple[int, ...]) -> list[int]:
            return [c - 1 for c in cited if 1 <= c <= len(views)]

        # Only what the checks below will read gets encoded, each kind in one batch: claims that no
        # cited passage quotes, and the sentences of the cited passages those claims are scored against.
        needs_vector: list[str] = []
        to_encode: list[PassageView] = []
        for text, cited in claims:
            indices = cited_views(cited)
            not_quoting = [views[i] for i in indices if views[i].quoted(text) is None]
            if not_quoting or not indices:
                needs_vector.append(text)
                to_encode.extend(not_quoting)
        claim_vectors = dict(zip(needs_vector, verifier.vectors.encode(needs_vector), strict=True))
        verifier._encode(to_encode)
        kept: list[AnswerSentence] = []
        for text, cited in claims:
            vector = claim_vectors.get(text)
            scores: dict[int, SupportedBy] = {}
            for i in cited_views(cited):
                scores[i] = verifier.support(text, vector, views[i], i)
            valid_cited = [i for i in cited_views(cited) if scores[i].score >= verifier.threshold]
            if not valid_cited:
                # No cited passage holds it: look for the one that does, across all of them.
                if vector is None:
                    vector = claim_vectors[text] = verifier.vectors.encode([text])[0]
                verifier._encode(views)
                for i, view in enumerate(views):
                    if i not in scores:
                        scores[i] = verifier.support(text, vector, view, i)
            best = max(scores.values(), key=lambda s: s.score) if scores else None
            if valid_cited:
                chosen, status = list(dict.fromkeys(valid_cited)), "supported"
            elif best is not None and best.score >= verifier.threshold:
                chosen, status = [best.passage], "moved" if cited else "supported"
            else:
                sentence = AnswerSentence(text, (), best.score if best else 0.0, "unsupported", cited)
                if self.unsupported == "mark":
                    kept.append(sentence)
                else:
                    self._unsupported.append(sentence)
                continue
            for index in chosen:
                if index not in self._numbering:
                    self._numbering[index] = len(self._numbering) + 1
                    self._spans[index] = []
                # A passage that supports several sentences keeps one number, and each span stays highlighted.
                if scores[index].span not in self._spans[index]:
                    self._spans[index].append(scores[index].span)
            support = max(scores[i].score for i in chosen)
            kept.append(AnswerSentence(text, tuple(self._numbering[i] for i in chosen), support, status, cited))
        self.kept.extend(kept)
        return kept

    def result(self) -> Verified:
        """The verdict on every sentence added so far."""
        if not self._claimed:
            return Verified([], list(self._injected), [], "", refusal_only=bool(self.refusals) and not self._injected,
                            refusals=tuple(self.refusals))
        return Verified(list(self.kept), [*self._injected, *self._unsupported], self.citations, render(self.kept),
                        refusal_only=False, refusals=tuple(self.refusals))


def render(sentences_: list[AnswerSentence]) -> str:
    """Sentences joined into a paragraph, each followed by its markers ("... [1][2].")."""
    parts = []
    for sentence in sentences_:
        text = sentence.text
        markers = "".join(f"[{n}]" for n in sentence.citations) if sentence.citations else "[unsupported]"
        if text and text[-1] in ".!?":
            parts.append(f"{text[:-1]} {markers}{text[-1]}")
        else:
            parts.append(f"{text} {markers}")
    return " ".join(parts)
