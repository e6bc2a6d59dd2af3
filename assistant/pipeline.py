"""The answering pipeline, one visible path for every answerer:

    question + history
      -> standalone query       (answerer.standalone_query)
      -> hybrid retrieval       (Retriever)
      -> relevance gate         (refuse when nothing is relevant enough)
      -> draft, streamed        (answerer.draft)
      -> verification           (Verifier: keep, move or drop each citation)
      -> Answer                 (refused when no sentence survives)
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from assistant.answer import Answer, Timings, Turn
from assistant.answerers import Answerer, ExtractiveAnswerer, LLMAnswerer, strip_markup
from assistant.prompts import REFUSAL_TEXT
from assistant.retrieval import Passage, Retriever
from assistant.text import years
from assistant.verification import Verifier
from index.filters import Filters


@dataclass(frozen=True)
class Token:
    """A piece of the draft as it streams (before verification)."""

    text: str


@dataclass(frozen=True)
class AskOptions:
    k: int | None = None
    filters: Filters = field(default_factory=Filters)
    use_mmr: bool | None = None


class AnswerPipeline:
    """Runs a question through retrieval, an answerer and verification."""

    def __init__(self, retriever: Retriever, verifier: Verifier, min_relevance: float,
                 unsupported: str = "drop", max_question_chars: int = 2000, max_passages: int = 20) -> None:
        self.retriever = retriever
        self.verifier = verifier
        self.min_relevance = min_relevance
        self.unsupported = unsupported
        self.max_question_chars = max_question_chars
        self.max_passages = max_passages

    def ask(self, answerer: Answerer, question: str, history: Sequence[Turn] = (),
            options: AskOptions = AskOptions()) -> Answer:
        """The whole answer at once."""
        for event in self.stream(answerer, question, history, options):
            if isinstance(event, Answer):
                return event
        raise RuntimeError("the pipeline ended without an answer")

    def stream(self, answerer: Answerer, question: str, history: Sequence[Turn] = (),
               options: AskOptions = AskOptions()) -> Iterator[Token | Answer]:
        """Draft tokens as they come, then the verified ``Answer``."""
        question = question.strip()
        if not question:
            raise ValueError("The question is empty.")
        if len(question) > self.max_question_chars:
            raise ValueError(
                f"The question is {len(question)} characters long; the limit is {self.max_question_chars}."
            )
        if options.k is not None and not 1 <= options.k <= self.max_passages:
            # Each passage costs retrieval depth, verification time and prompt space: bound what one request takes.
            raise ValueError(f"{options.k} passages asked for; between 1 and {self.max_passages} are allowed "
                             "(CHOKEPOINT_MAX_PASSAGES).")
        started = time.perf_counter()
        query = answerer.standalone_query(question, history)
        retrieval = self.retriever.retrieve(query, k=options.k, filters=options.filters, use_mmr=options.use_mmr)
        passages = retrieval.passages
        if self.retriever.embedder is self.verifier.vectors.embedder and len(retrieval.query_vector):
            self.verifier.vectors.remember(query, retrieval.query_vector)  # the answerer ranks against it too
        retrieval_s = time.perf_counter() - started

        def finish(**fields: object) -> Answer:
            total = time.perf_counter() - started
            timings = fields.pop("timings", Timings(retrieval_s=retrieval_s, total_s=total))
            return Answer(question=question, query=query, passages=tuple(passages), answerer=answerer.name,
                          timings=timings, **fields)  # type: ignore[arg-type]

        best = max((p.relevance for p in passages), default=0.0)
        unknown = self.retriever.unknown_terms(question)
        if best < self.min_relevance or unknown:
            reason = (
                f"The indexed sources never mention {', '.join(repr(t) for t in unknown)}." if unknown
                else f"No passage is relevant enough (best similarity {best:.2f}, "
                     f"threshold {self.min_relevance:.2f})."
            )
            yield finish(text=REFUSAL_TEXT, sentences=(), citations=(), refused=True, refusal_reason=reason)
            return

        context: list[Passage] = (
            answerer.passages_for_prompt(query, passages) if isinstance(answerer, LLMAnswerer) else passages
        )
        generation_started = time.perf_counter()
        first_token: float | None = None
        pieces: list[str] = []
        for piece in answerer.draft(question, query, context):
            if first_token is None:
                first_token = time.perf_counter() - started
            pieces.append(piece)
            yield Token(piece)
        draft = strip_markup("".join(pieces))
        generation_s = time.perf_counter() - generation_started

        verify_started = time.perf_counter()
        verified = self.verifier.verify(draft, context, unsupported=self.unsupported)
        verification_s = time.perf_counter() - verify_started
        timings = Timings(retrieval_s=retrieval_s, generation_s=generation_s, first_token_s=first_token,
                          verification_s=verification_s, total_s=time.perf_counter() - started)
        if not any(s.status != "unsupported" for s in verified.sentences):
            if verified.refusals and isinstance(answerer, ExtractiveAnswerer):
                reason = f"The passages say what they leave out: \u201c{verified.refusals[0]}\u201d"
            elif verified.refusal_only or not verified.dropped:
                reason = "The answerer found no answer in the passages."
            else:
                reason = f"All {len(verified.dropped)} sentences of the draft lacked support in the passages."
            yield finish(text=REFUSAL_TEXT, sentences=(), citations=(), refused=True, refusal_reason=reason,
                         dropped=tuple(verified.dropped), draft=draft, timings=timings)
            return
        asked_years = years(question)
        answered = " ".join(c.passage.chunk.text for c in verified.citations)
        if asked_years and not asked_years & years(answered):
            # Asked about 2020, answered with 2019: a near miss is not an answer.
            yield finish(text=REFUSAL_TEXT, sentences=(), citations=(), refused=True,
                         refusal_reason=f"No passage gives an answer for {', '.join(sorted(asked_years))}.",
                         dropped=tuple(verified.sentences) + tuple(verified.dropped), draft=draft, timings=timings)
            return
        yield finish(text=verified.text, sentences=tuple(verified.sentences), citations=tuple(verified.citations),
                     refused=False, dropped=tuple(verified.dropped), draft=draft, timings=timings)
