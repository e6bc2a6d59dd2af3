"""The direct answer: one short sentence, put first, that states what the question asked, built from
spans of the verified answer's cited passages only.

    question ──parse──> Asked (its asks, options, comparison order)
    kept sentences ──located in their cited passages──> evidence (spaCy docs with source offsets)
    each ask ──> the best value of its type in the evidence, or "the sources do not say"
    "A or B?" ──> each option's value from its own evidence, compared when the question says which way

The value is a name, a date, a figure or a noun phrase, quoted from the passage at known offsets, so the
reader, and ``DirectAnswer.spans``, can check it word for word; the sentence around it is made of fixed
connective words only. A question with no typed ask (why, how, describe) gets no direct answer: its
quoted sentences are the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from assistant.answer import AnswerSentence, AnswerSpan, Citation, DirectAnswer
from assistant.reading.asks import LABELS, Ask, Asked, read_question
from assistant.reading.comparison import capitalised, compare
from assistant.reading.evidence import Evidence, whole
from assistant.reading.language import load_language
from assistant.reading.passage_text import locate, plain_lines, statements
from index.embedding import TextEmbedder


class DirectAnswerComposer:
    """Composes ``DirectAnswer`` from a verified answer's sentences and citations.

    The spaCy pipeline ``nlp_model`` is loaded when the first answer is composed, not with the engine:
    a process that only indexes or searches never pays its second.
    """

    def __init__(self, nlp_model: str, embedder: TextEmbedder) -> None:
        self.nlp_model = nlp_model
        self.embedder = embedder
        self._descriptions: dict[str, np.ndarray] = {}

    @property
    def nlp(self) -> Language:
        return load_language(self.nlp_model)

    def run(self, question: str, sentences: Sequence[AnswerSentence],
            citations: Sequence[Citation]) -> DirectAnswer | None:
        asked = read_question(self.nlp, question)
        if not asked.asks and not asked.options:
            return None
        evidence = self._evidence(sentences, citations)
        if not evidence:
            return None
        if asked.options:
            return compare(asked, evidence)
        found = [(ask, self._value(ask, asked, evidence)) for ask in asked.asks]
        if all(value is None for _, value in found):
            return None
        if len(found) == 1:
            value = found[0][1]
            assert value is not None
            chain = _chain(value, asked, evidence)
            if not chain:
                return DirectAnswer(text=f"{value.text} [{value.n}].", answer=value.text, spans=(value,))
            steps = " \u2192 ".join(f"{step.text} [{step.n}]" for step in (*chain, value))
            return DirectAnswer(text=f"{value.text} [{value.n}] ({steps}).", answer=value.text, spans=(value,),
                                chain=chain)
        pieces, values = [], []
        for ask, value in found:
            if value is None:
                pieces.append(f"{capitalised(ask.text)}: the sources do not say")
            else:
                pieces.append(f"{capitalised(ask.label)}: {value.text} [{value.n}]")
                values.append(value)
        missing = tuple(ask.text for ask, value in found if value is None)
        return DirectAnswer(text="; ".join(pieces) + ".", answer="; ".join(v.text for v in values),
                            spans=tuple(values), missing=missing)

    # Evidence ---------------------------------------------------------------------------------

    def _evidence(self, sentences: Sequence[AnswerSentence], citations: Sequence[Citation]) -> list[Evidence]:
        """Every sentence of each cited passage, parsed, where it stands in the passage. A sentence the
        answer quotes ranks by its place in the answer; the passage's other sentences follow, since a
        value is often in the sentence next to the one that matched the question ("It opened in 1904")."""
        by_n = {c.n: c for c in citations}
        kept: dict[tuple[int, int], int] = {}
        order: list[Citation] = []
        for rank, sentence in enumerate(sentences):
            if sentence.status == "unsupported":
                continue
            for n in sentence.citations:
                citation = by_n.get(n)
                if citation is None:
                    continue
                if citation not in order:
                    order.append(citation)
                at = locate(sentence.text, citation.chunk.text)
                if at is None:  # a reworded sentence: its support is the span verification found
                    at = (citation.support_start - citation.chunk.start, citation.support_end - citation.chunk.start)
                kept.setdefault((n, at[0]), rank)
        quoted = max(kept.values(), default=0) + 1
        lines = [(citation, positions, plain)
                 for citation in order for plain, positions in plain_lines(citation.chunk.text)]
        evidence: list[Evidence] = []
        for (citation, positions, _), doc in zip(lines, self.nlp.pipe(plain for *_, plain in lines), strict=True):
            for sent in statements(doc):
                within = positions[sent.start_char: sent.end_char]
                begin, end = within[0], within[-1] + 1
                rank = next((r for (n, at), r in kept.items() if n == citation.n and begin <= at < end), None)
                evidence.append(Evidence(quoted + len(evidence) if rank is None else rank, citation,
                                          within, sent.as_doc()))
        return evidence

    # One value ---------------------------------------------------------------------------------

    def _value(self, ask: Ask, asked: Asked, evidence: list[Evidence]) -> AnswerSpan | None:
        candidates = [(e, span) for e in evidence for span in _candidates(e.doc, ask, asked)]
        if not candidates:
            return None
        fit = self._noun_fit(ask.noun, [span for _, span in candidates])
        best = max(range(len(candidates)), key=lambda i: _score(ask, asked, *candidates[i]) + fit[i])
        e, span = candidates[best]
        return e.answer_span(_trimmed(span, ask))

    def _noun_fit(self, noun: str, candidates: list[Span]) -> np.ndarray:
        """How well each candidate fits what a "which X" ask names, 0 without X: the embedder's cosine
        between X and spaCy's description of the candidate's entity type ("language" is near "Any named
        language", "city" near "Countries, cities, states"), and X's own head word in the candidate
        ("the pop band Euphoria" for "which band"). Only X is embedded here, and each description once
        per process: passage text is never embedded at question time."""
        if not noun or not candidates:
            return np.zeros(len(candidates))
        labels = sorted({c.label_ for c in candidates if c.label_ in LABELS["thing"]})
        fits = self._described(labels) @ self.embedder.encode([noun])[0] if labels else np.zeros(0)
        by_label = dict(zip(labels, fits, strict=True))
        head = noun.split()[-1].lower()
        named = [head in {t.lemma_.lower() for t in c} | {t.lower_ for t in c} for c in candidates]
        return np.array([0.5 * named[i] + 2.0 * by_label.get(c.label_, 0.15) for i, c in enumerate(candidates)])

    def _described(self, labels: list[str]) -> np.ndarray:
        missing = [label for label in labels if label not in self._descriptions]
        if missing:
            vectors = self.embedder.encode([spacy.explain(label) or label for label in missing])
            self._descriptions.update(zip(missing, vectors, strict=True))
        return np.stack([self._descriptions[label] for label in labels])



def _chain(value: AnswerSpan, asked: Asked, evidence: list[Evidence]) -> tuple[AnswerSpan, ...]:
    """The bridges that lead to the value's passage, as cited passages spell them: the passage the value
    is in is named by another cited passage, which may be named by a third ("the singer [1] -> the
    single [2]" before the producer [3]). A passage the question itself names is no bridge."""
    steps: list[AnswerSpan] = []
    at_n, used = value.n, {value.n}
    while len(steps) < 3:
        title = next((_title_name(e.citation.chunk.title) for e in evidence if e.citation.n == at_n), "")
        if not title or set(title.split()) <= asked.named:
            break
        link = next(((e, at) for e in sorted(evidence, key=lambda e: e.rank) if e.citation.n not in used
                     and (at := e.doc.text.lower().find(title)) >= 0), None)
        span = link[0].doc.char_span(link[1], link[1] + len(title), alignment_mode="expand") if link else None
        if link is None or span is None:
            break
        steps.insert(0, link[0].answer_span(span))
        at_n = link[0].citation.n
        used.add(at_n)
    return tuple(steps)


def _title_name(title: str) -> str:
    """What another passage calls the subject of a passage titled ``title`` ("Varnholt (rowing club)" is
    "varnholt"), lower case; empty for a title too short to find safely."""
    name = re.sub(r"\s*\([^)]*\)", "", title or "").strip().strip("\"\u201c\u201d").lower()
    return name if len(name) >= 4 else ""


def _candidates(doc: Doc, ask: Ask, asked: Asked) -> list[Span]:
    """The spans of ``doc`` that could answer ``ask``: entities of its types (and, for "what X",
    noun phrases), less those the question already names."""
    spans = [whole(e) for e in doc.ents if e.label_ in ask.labels]
    if ask.kind == "number":
        # A count inside a name ("the translation '35 Key Technologies'", tagged WORK_OF_ART) still counts.
        spans += [Span(doc, t.i, t.i + 1, label="CARDINAL") for e in doc.ents if e.label_ not in ask.labels
                  for t in e if t.like_num and t.text.isdigit()]
    if ask.kind == "thing":
        # A noun phrase that holds a name or a figure is answered by that entity ("a 1998 book": 1998).
        taken = {i for e in doc.ents for i in range(e.start, e.end)}
        spans += [c for c in doc.noun_chunks if not taken & set(range(c.start, c.end)) and c.root.pos_ != "PRON"]
    # A name the tagger left untyped ("the Dutch company ASML"): the proper nouns that head a noun phrase.
    for chunk in doc.noun_chunks if ask.kind in ("person", "place", "thing") else ():
        root = chunk.root
        if root.pos_ == "PROPN" and not any(e.start <= root.i < e.end for e in doc.ents):
            start = root.i
            while start > chunk.start and doc[start - 1].pos_ == "PROPN":
                start -= 1
            spans.append(Span(doc, start, root.i + 1))
    return [s for s in spans if _new_words(s, asked)]


def _trimmed(span: Span, ask: Ask) -> Span:
    """The value as asked: without words the question says before its question word ("more than 150
    million" for "more than how many"), and a date cut to its year when the question asks for a year."""
    lead = ask.lead.split()
    words = [t.lower_ for t in span[: len(lead)]]
    if lead and words == lead and len(span) > len(lead):
        span = span[len(lead):]
    if ask.noun.split()[-1:] == ["year"] and span.label_ == "DATE":
        year = next((t for t in span if t.like_num and len(t.text) == 4 and t.text.isdigit()), None)
        if year is not None:
            return span.doc[year.i: year.i + 1]
    return span


def _new_words(span: Span, asked: Asked) -> bool:
    words = {t.lower_ for t in span if not (t.is_stop or t.is_punct)}
    return bool(words - asked.named)


def _score(ask: Ask, asked: Asked, evidence: Evidence, span: Span) -> float:
    """A candidate's fit: its type, how close it stands to the ask's own words in its sentence, how much
    of the question its sentence covers, and the sentence's place in the answer."""
    label = span.label_ if span.label_ in ask.labels else ""  # a noun chunk's "NP" is no type
    if ask.kind == "thing":  # any entity may answer "what X": the fit of X to it decides
        typed = 1.0 if label else 0.6
    else:
        typed = 1.0 - 0.15 * ask.labels.index(label) if label in ask.labels else 0.3
    anchors = [t.i for t in evidence.doc if t.lemma_.lower() in ask.lemmas and not (span.start <= t.i < span.end)]
    distance = min((abs(a - span.start) if a < span.start else abs(a - span.end + 1) for a in anchors), default=12)
    near = 1.0 / (1.0 + distance / 4)
    sentence = {t.lemma_.lower() for t in evidence.doc}
    cover = len(asked.lemmas & sentence) / max(1, len(asked.lemmas))
    counted = ask.noun and ask.kind == "number" and _counts(span, ask.noun)
    unit = 0.5 if counted else 0.0
    if ask.noun and ask.kind == "number" and label == "DATE" and not counted:
        typed = 0.3  # a date answers "how many years", not "how many technologies"
    # The doer of a passive verb ("translated ... by the Orlen Institute") answers "who did it".
    agent = 0.3 if ask.kind == "person" and span.root.head.dep_ == "agent" else 0.0
    return typed + near + cover + unit + agent + _role(ask, span) - 0.05 * min(evidence.rank, 10)


def _role(ask: Ask, span: Span) -> float:
    """Whether the candidate fills a slot of the ask's own verb: "Pieter Aske produced ...", "produced by
    Jon Halm", "founded in 1911" for "who produced", "who produced", "when was it founded". A sentence
    that only shares the question's other words (the bridge's) is about something else."""
    if not ask.verb:
        return 0.0
    head = span.root.head
    heads = [head, head.head] if head.dep_ in ("prep", "agent") else [head]
    return 1.0 if any(h.lemma_.lower() == ask.verb and h.i != span.root.i for h in heads) else 0.0


def _counts(span: Span, noun: str) -> bool:
    """Whether a figure counts what a "how many" ask counts: the noun follows within three words
    ("35 Key 'Stranglehold' Technologies"), or the figure spells it ("three years")."""
    following = [t for t in span.doc[span.end: span.end + 6] if not t.is_punct][:3] + list(span)
    lemma = noun.lower().rstrip("s")
    return any(t.lemma_.lower().rstrip("s") == lemma for t in following)
