"""The answering pipeline, one visible path for every answerer:

    question + history
      -> standalone query       (answerer.standalone_query)
      -> hybrid retrieval       (Retriever)
      -> relevance gate         (refuse when nothing is relevant enough)
      -> later hops             (Hops: search the bridge entities, up to 4 hops, until a passage answers)
      -> draft, streamed        (answerer.draft)                      yields Token per piece
      -> verification           (Verification: keep, move or drop     yields Settled per kept sentence,
                                 each citation, sentence by sentence   once the answer cannot be refused
                                 as the draft completes them)
      -> direct answer          (DirectAnswerComposer: the asked-for value, from cited spans, first)
      -> Answer                 (refused when no sentence survives)   yields Answer

A slow answerer drafts for seconds to minutes, so each sentence is verified as soon as the draft has
moved on to the next one, and a kept sentence is handed on (``Settled``) once nothing later can take
it back: the draft is never shown as the answer, and the verified answer need not wait for its end.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from assistant.answer import Answer, AnswerSentence, Citation, Timings, Turn
from assistant.answerers import Answerer, strip_markup
from assistant.llm.prompts import REFUSAL_TEXT
from assistant.passage import Passage
from assistant.reading.direct import DirectAnswerComposer
from assistant.reading.hop import Hops, HopStep
from assistant.retrieval import Retriever
from assistant.sentence_vectors import SentenceVectors
from assistant.text import years
from assistant.verification import Verification, Verified, Verifier, verbatim_key
from index.filters import Filters
from index.sentences import sentences

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Token:
    """A piece of the draft as it streams (before verification)."""

    text: str


@dataclass(frozen=True)
class Preview:
    """A verified answer from the fast answerer, sent before a slow answerer's draft starts: a CPU user
    reads it at once and sees it replaced when the LLM's answer arrives."""

    answer: Answer


@dataclass(frozen=True)
class Settled:
    """A verified sentence that the final answer will keep, sent while the draft goes on: the answer
    reaches a reader sentence by sentence, never as unverified draft. ``citations`` are the ones this
    sentence is the first to cite (their numbers and spans are final)."""

    sentence: AnswerSentence
    citations: tuple[Citation, ...]


@dataclass(frozen=True)
class AskOptions:
    k: int | None = None
    filters: Filters = field(default_factory=Filters)
    use_mmr: bool | None = None


class AnswerPipeline:
    """Runs a question through retrieval, an answerer and verification.

    ``vectors`` is the sentence-vector cache the answerers and the verifier share, built on the
    retriever's model: the query vector retrieval computed is kept there, so nobody embeds it again.
    """

    def __init__(self, retriever: Retriever, verifier: Verifier, min_relevance: float, nlp_model: str,
                 unsupported: str = "drop", max_question_chars: int = 2000, max_passages: int = 20,
                 preview: Answerer | None = None, vectors: SentenceVectors | None = None,
                 direct: DirectAnswerComposer | None = None) -> None:
        self.retriever = retriever
        self.verifier = verifier
        self.min_relevance = min_relevance
        self.unsupported = unsupported
        self.max_question_chars = max_question_chars
        self.max_passages = max_passages
        self.hops = Hops(retriever, verifier, nlp_model)
        self.preview = preview
        self.vectors = vectors
        self.direct = direct

    def ask(self, answerer: Answerer, question: str, history: Sequence[Turn] = (),
            options: AskOptions = AskOptions()) -> Answer:
        """The whole answer at once."""
        for event in self.stream(answerer, question, history, options):
            if isinstance(event, Answer):
                return event
        raise RuntimeError("the pipeline ended without an answer")

    def stream(self, answerer: Answerer, question: str, history: Sequence[Turn] = (),
               options: AskOptions = AskOptions()) -> Iterator[Token | Preview | Settled | Answer]:
        """Draft tokens as they come, each kept sentence (``Settled``) as soon as it is verified and sure to
        stay, then the verified ``Answer``; before a slow answerer's tokens, a ``Preview`` from the fast one
        (when it finds an answer). The ``Settled`` sentences of an answer that is not refused are its
        sentences, in order; a refused answer has none."""
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
        if self.vectors is not None and len(retrieval.query_vector):
            self.vectors.remember(query, retrieval.query_vector)  # the answerer ranks against it too
        retrieval_s = time.perf_counter() - started

        hop_steps: tuple[HopStep, ...] = ()

        def finish(**fields: object) -> Answer:
            total = time.perf_counter() - started
            timings = fields.pop("timings", Timings(retrieval_s=retrieval_s, total_s=total))
            return Answer(question=question, query=query, passages=tuple(passages), answerer=answerer.name,
                          timings=timings, hop_steps=hop_steps, **fields)  # type: ignore[arg-type]

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

        hop = self.hops.run(question if question == query else query, passages, options.filters,
                            question_vector=retrieval.query_vector)
        passages, hop_steps = hop.passages, hop.steps
        if options.k is not None and len(passages) > options.k:
            # The user asked for k passages: the hop's finds take the places of the weakest first-hop ones.
            added = passages[len(retrieval.passages):][: max(0, options.k - 1)]
            passages = [*retrieval.passages[: options.k - len(added)], *added]
        if self.preview is not None and self.preview.name != answerer.name:
            quick = self._preview(self.preview, question, query, passages)
            if quick is not None:
                yield Preview(quick)
        context: list[Passage] = answerer.passages_for_prompt(query, passages)
        settling = _Settling(self.verifier.start(context, unsupported=self.unsupported), years(question))
        generation_started = time.perf_counter()
        first_token: float | None = None
        pieces: list[str] = []
        for piece in answerer.draft(question, query, context):
            if first_token is None:
                first_token = time.perf_counter() - started
            pieces.append(piece)
            yield Token(piece)
            yield from settling.feed("".join(pieces))
        draft = strip_markup("".join(pieces))
        generation_s = time.perf_counter() - generation_started - settling.seconds

        verified, rest = settling.finish(draft)
        timings = Timings(retrieval_s=retrieval_s, hop_s=hop.seconds, hops=hop.count, generation_s=generation_s,
                          first_token_s=first_token, verification_s=settling.seconds,
                          total_s=time.perf_counter() - started)
        if not any(s.status != "unsupported" for s in verified.sentences):
            quoted = [r for r in verified.refusals
                      if any(verbatim_key(r) in verbatim_key(p.chunk.text) for p in context)]
            if quoted:
                reason = f"The passages say what they leave out: \u201c{quoted[0]}\u201d"
            elif verified.refusals and verified.refusal_only:
                reason = verified.refusals[0]
            elif verified.refusal_only or not verified.dropped:
                reason = "The answerer found no answer in the passages."
            else:
                reason = f"All {len(verified.dropped)} sentences of the draft lacked support in the passages."
            yield finish(text=REFUSAL_TEXT, sentences=(), citations=(), refused=True, refusal_reason=reason,
                         dropped=tuple(verified.dropped), draft=draft, timings=timings)
            return
        asked_years = years(question)
        if asked_years and not asked_years & years(_answered(verified.citations)):
            # Asked about 2020, answered with 2019: a near miss is not an answer.
            yield finish(text=REFUSAL_TEXT, sentences=(), citations=(), refused=True,
                         refusal_reason=f"No passage gives an answer for {', '.join(sorted(asked_years))}.",
                         dropped=tuple(verified.sentences) + tuple(verified.dropped), draft=draft, timings=timings)
            return
        yield from rest
        composed = time.perf_counter()
        direct = None if self.direct is None else self.direct.run(query, verified.sentences, verified.citations)
        timings = dataclasses.replace(timings, direct_s=time.perf_counter() - composed,
                                      total_s=time.perf_counter() - started)
        text = verified.text if direct is None else f"{direct.text}\n\n{verified.text}"
        yield finish(text=text, sentences=tuple(verified.sentences), citations=tuple(verified.citations),
                     refused=False, dropped=tuple(verified.dropped), draft=draft, timings=timings,
                     direct_answer=direct)

    def _preview(self, answerer: Answerer, question: str, query: str, passages: list[Passage]) -> Answer | None:
        """The fast answerer's verified answer on the same passages, or None when it finds none."""
        started = time.perf_counter()
        context = answerer.passages_for_prompt(query, passages)
        draft = strip_markup("".join(answerer.draft(question, query, context)))
        verified = self.verifier.verify(draft, context, unsupported=self.unsupported)
        if not any(s.status != "unsupported" for s in verified.sentences):
            return None
        return Answer(question=question, query=query, text=verified.text, sentences=tuple(verified.sentences),
                      citations=tuple(verified.citations), passages=tuple(passages), refused=False,
                      answerer=answerer.name, draft=draft,
                      timings=Timings(total_s=time.perf_counter() - started))


class _Settling:
    """Verifies a draft's sentences while it is written, and holds each kept one back until the answer
    can no longer be refused (the checks at the end of ``AnswerPipeline.stream``): what was shown as
    the answer is never taken back.
    """

    def __init__(self, verification: Verification, asked_years: set[str]) -> None:
        self.verification = verification
        self.asked_years = asked_years
        self.seconds = 0.0
        """Time spent verifying, all batches together."""
        self._added: list[str] = []  # the draft's sentences given to the verification, as written
        self._held: list[AnswerSentence] = []
        self._sure = False
        self._cited = 0  # the highest citation number handed on

    def feed(self, draft: str) -> list[Settled]:
        """The sentences ``draft`` (so far) has completed since the last call, verified: those now sure to stay."""
        done = complete_sentences(draft)
        if len(done) <= len(self._added) or done[: len(self._added)] != self._added:
            return []
        return self._add(done[len(self._added):])

    def finish(self, draft: str) -> tuple[Verified, list[Settled]]:
        """The verdict on the whole (stripped) ``draft``, and its kept sentences not yet handed on (which
        the caller hands on only when the answer is not refused)."""
        whole = [span.text for span in sentences(draft)]
        if whole[: len(self._added)] != self._added:
            # Unreachable in practice (complete_sentences keeps only what later text cannot change);
            # should it happen, the answer is the draft's, and what was sent no longer matches it.
            log.warning("The draft's final sentences differ from the ones verified while it streamed; "
                        "verifying it again whole.")
            started = time.perf_counter()
            verified = self.verification.verifier.verify(draft, self.verification.passages,
                                                         unsupported=self.verification.unsupported)
            self.seconds += time.perf_counter() - started
            return verified, []
        settled = self._add(whole[len(self._added):])
        return self.verification.result(), settled

    def _add(self, new: list[str]) -> list[Settled]:
        started = time.perf_counter()
        self._added.extend(new)
        self._held.extend(self.verification.add(new))
        citations = self.verification.citations
        if not self._sure:
            # The end of ``stream`` refuses an answer with no supported sentence, or one whose cited
            # passages never name a year the question asks about; once neither can happen, nothing can.
            supported = any(s.status != "unsupported" for s in self.verification.kept)
            self._sure = supported and (not self.asked_years or bool(self.asked_years & years(_answered(citations))))
        settled: list[Settled] = []
        if self._sure:
            for sentence in self._held:
                introduced = tuple(c for c in citations if c.n in sentence.citations and c.n > self._cited)
                self._cited = max([self._cited, *(c.n for c in introduced)])
                settled.append(Settled(sentence, introduced))
            self._held = []
        self.seconds += time.perf_counter() - started
        return settled


def complete_sentences(draft: str) -> list[str]:
    """The sentences of a draft still being written that no later text can change, as ``sentences`` of the
    stripped draft would give them.

    The last sentence is never complete: the next piece may continue it, or bring the ``[n]`` markers
    that follow its full stop. A sentence before it is, once the next one has started with real words
    (``sentences`` only yields pieces with letters). An unclosed ``<`` may still become a tag that
    ``strip_markup`` removes, with everything up to its ``>``: nothing after it counts yet.
    """
    tag = _OPEN_TAG.search(draft)
    if tag is not None:
        draft = draft[: tag.start()]
    return [span.text for span in sentences(strip_markup(draft))][:-1]


def _answered(citations: Sequence[Citation]) -> str:
    """What the cited passages say, titles included: where an asked year must appear."""
    return " ".join(f"{c.passage.chunk.title} {c.passage.chunk.text}" for c in citations)


# As strip_markup's tag pattern, before its ">" has arrived.
_OPEN_TAG = re.compile(r"<[^>\n]{0,200}$")
