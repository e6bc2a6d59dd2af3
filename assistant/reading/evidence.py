"""A sentence of a cited passage, parsed, as the direct answer reads it, and the entity spans it gives."""

from __future__ import annotations

from dataclasses import dataclass

from spacy.tokens import Doc, Span

from assistant.answer import AnswerSpan, Citation


def whole(entity: Span) -> Span:
    """The entity with what belongs to its name: a following ", Jr." or ", Ohio" (a place in a place), and
    without a possessive "'s"."""
    doc, end = entity.doc, entity.end
    start = entity.start
    if entity.label_ == "DATE" and start > 0 and doc[start - 1].is_digit and int(doc[start - 1].text) <= 31:
        start -= 1  # "26" before "September 2014": the tagger reads the day as a figure of its own
    if end + 1 < len(doc) and doc[end].text == ",":
        after = next((e for e in doc.ents if e.start == end + 1), None)
        if after is not None and (after.label_ == entity.label_ == "GPE"):
            end = after.end
        elif entity.label_ == "PERSON" and doc[end + 1].text.rstrip(".") in ("Jr", "Sr", "II", "III"):
            end += 2  # the comma and the suffix
    if doc[end - 1].tag_ == "POS":
        end -= 1
    if end <= start:
        return entity
    return Span(doc, start, end, label=entity.label_)


@dataclass(frozen=True)
class Evidence:
    """A kept sentence as it stands in a cited passage, parsed."""

    rank: int
    citation: Citation
    positions: tuple[int, ...]
    """Where each character of ``doc`` stands in the passage's chunk text."""
    doc: Doc

    def answer_span(self, span: Span) -> AnswerSpan:
        """The value as the passage spells it, at its offsets in the source file."""
        chunk = self.citation.chunk
        start, end = self.positions[span.start_char], self.positions[span.end_char - 1] + 1
        text = chunk.text[start:end]
        return AnswerSpan(text=text, n=self.citation.n, start=chunk.start + start, end=chunk.start + end)
