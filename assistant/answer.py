"""What an answer is: text with [n] markers, its sentences, their citations, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from assistant.passage import Passage
from index.attribution import Report
from index.chunk import Chunk

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True)
class Citation:
    """A numbered source behind one or more sentences of an answer."""

    n: int
    passage: Passage
    support_start: int
    """Start of the supporting span, as a character offset in the source file (as ``passage.chunk.start``)."""
    support_end: int
    spans: tuple[tuple[int, int], ...] = ()
    """Every span of the passage the answer's sentences quote, in order (file offsets); the first is
    ``support_start``..``support_end``. Empty in records saved before there could be more than one."""

    @property
    def chunk(self) -> Chunk:
        return self.passage.chunk

    @property
    def supports(self) -> tuple[tuple[int, int], ...]:
        return self.spans or ((self.support_start, self.support_end),)

    @property
    def reports(self) -> tuple[Report, ...]:
        """The reports the quoted blocks cite; the note's own publisher, date and URL when it does not say."""
        found = [r for start, end in self.supports for r in self.chunk.reports_at(start, end)]
        chunk = self.chunk
        return tuple(dict.fromkeys(found)) or (Report(chunk.publisher, "", chunk.date, chunk.url),)

    @property
    def supporting_text(self) -> str:
        chunk = self.passage.chunk
        return chunk.text[self.support_start - chunk.start : self.support_end - chunk.start]

    def as_dict(self) -> dict[str, Any]:
        chunk = self.passage.chunk
        return {
            "n": self.n, "id": chunk.id, "source": chunk.source, "title": chunk.title,
            "publisher": chunk.publisher, "date": chunk.date, "url": chunk.url, "page": chunk.page,
            "heading": chunk.heading, "text": chunk.text, "start": chunk.start, "end": chunk.end,
            "support_start": self.support_start, "support_end": self.support_end,
            "supporting_text": self.supporting_text,
            "spans": [{"start": s, "end": e, "text": chunk.text[s - chunk.start:e - chunk.start]}
                      for s, e in self.supports],
            "reports": [asdict(r) for r in self.reports],
        }


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence of the answer and the passages that support it.

    ``status`` says what verification did: kept the model's citation, moved it to the passage
    that supports the sentence, or found no support (dropped, or kept but marked).
    """

    text: str
    citations: tuple[int, ...]
    support: float
    status: Literal["supported", "moved", "unsupported"] = "supported"
    original_citations: tuple[int, ...] = ()


@dataclass(frozen=True)
class Timings:
    retrieval_s: float = 0.0
    hop_s: float = 0.0
    """The later retrieval hops (0 when the first hop's passages answered)."""
    hops: int = 1
    """How many searches the answer took: 1 when the first retrieval's passages answered."""
    generation_s: float = 0.0
    first_token_s: float | None = None
    verification_s: float = 0.0
    direct_s: float = 0.0
    """Composing the direct answer (parsing the question and the quoted sentences)."""
    total_s: float = 0.0


@dataclass(frozen=True)
class Answer:
    """An answer, ready to show or to score."""

    question: str
    query: str
    """What was searched for: the question made standalone from the conversation."""
    text: str
    sentences: tuple[AnswerSentence, ...]
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    refused: bool
    answerer: str
    dropped: tuple[AnswerSentence, ...] = ()
    refusal_reason: str = ""
    draft: str = field(default="", repr=False)
    """The answerer's raw output before verification (for debugging and evaluation)."""
    timings: Timings = Timings()
    hop_steps: tuple[HopStep, ...] = ()
    """What the later retrieval hops searched for (empty when none ran)."""
    direct_answer: DirectAnswer | None = None
    """The short statement of what was asked, which ``text`` opens with (None when none was composed)."""

    @property
    def hop_queries(self) -> tuple[str, ...]:
        return tuple(step.query for step in self.hop_steps)

    def markdown(self) -> str:
        """The answer with a numbered reference list, for copying."""
        lines = [self.text, ""]
        for citation in self.citations:
            chunk = citation.chunk
            bits = [chunk.title or chunk.source]
            if chunk.page:
                bits.append(f"p. {chunk.page}")
            drawn = "; ".join(", ".join(b for b in (r.publisher, r.date) if b) + (f" <{r.url}>" if r.url else "")
                              for r in citation.reports)
            lines.append(f"[{citation.n}] {', '.join(bits)} — {drawn} — `{chunk.source}`" if drawn
                         else f"[{citation.n}] {', '.join(bits)} — `{chunk.source}`")
        return "\n".join(lines).strip()

    def as_dict(self) -> dict[str, Any]:
        """The `chokepoint ask --json` shape."""
        return {
            "question": self.question,
            "query": self.query,
            "answer": self.text,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "answerer": self.answerer,
            "sentences": [asdict(s) for s in self.sentences],
            "dropped": [asdict(s) for s in self.dropped],
            "citations": [c.as_dict() for c in self.citations],
            "passages": [
                {"id": p.chunk.id, "source": p.chunk.source, "title": p.chunk.title, "page": p.chunk.page,
                 "start": p.chunk.start, "end": p.chunk.end, "score": p.score, "relevance": p.relevance,
                 "text": p.chunk.text}
                for p in self.passages
            ],
            "timings": asdict(self.timings),
            "hop_queries": list(self.hop_queries),
            "hop_steps": [asdict(s) for s in self.hop_steps],
            "direct_answer": asdict(self.direct_answer) if self.direct_answer is not None else None,
        }


@dataclass(frozen=True)
class HopStep:
    """One search of a later hop: the bridge name a passage of the hop before named, and the query."""

    hop: int
    """2 for the first search after the pipeline's retrieval, up to ``Hops.max_hops``."""
    bridge: str
    query: str


@dataclass(frozen=True)
class AnswerSpan:
    """A value quoted in the direct answer: its words, its citation and where it stands in the source file."""

    text: str
    n: int
    start: int
    """Character offset in the source file (as ``Chunk.start``)."""
    end: int


@dataclass(frozen=True)
class DirectAnswer:
    """One short sentence that states what was asked, made of cited spans and fixed connective words."""

    text: str
    """The sentence as shown, with [n] markers: "Stephen King [1].", "A (A: 1871 [2]; B: 1904 [1])."."""
    answer: str
    """The asked-for value alone ("Stephen King"; the winner of a comparison; parts joined by "; "),
    empty when the spans do not settle it (a comparison with a missing value)."""
    spans: tuple[AnswerSpan, ...]
    missing: tuple[str, ...] = ()
    """The parts of the question that no cited span answers ("who translated it")."""
    chain: tuple[AnswerSpan, ...] = ()
    """The bridges a multi-hop answer went through, each as the cited passage before it names it, in
    order: "the singer [1] -> the single [2]" before the producer [3]."""
