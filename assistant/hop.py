"""The second retrieval hop, for questions that reach their answer through another entity.

"Who directed the film shot in Varnholt in 1987?" finds the passage on Varnholt, which names the film;
the director is in the film's own passage, which shares almost no words with the question. When the
first hop's passages hold no sentence that answers in full (one covering the question, with a value
of the asked kind), the names in its best-matching sentences that no retrieved passage is about are
searched for, with the question's words the first hop left uncovered, and the passages found join
the first hop's. A question the first hop answers costs nothing more.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from assistant.candidates import answer_candidates, title_key
from assistant.passage import Passage
from assistant.question import QuestionForm, name_runs, question_form
from assistant.retrieval import Retriever
from assistant.verification import Verifier
from index.filters import Filters
from index.words import content_words


class SecondHop:
    """Decides whether a question needs a second hop, and runs it."""

    def __init__(self, retriever: Retriever, verifier: Verifier, answered_cover: float = 0.65,
                 bridges: int = 2, per_bridge: int = 2) -> None:
        self.retriever = retriever
        self.verifier = verifier
        self.answered_cover = answered_cover
        self.bridges = bridges
        self.per_bridge = per_bridge

    def run(self, question: str, passages: list[Passage], filters: Filters,
            question_vector: np.ndarray | None = None) -> Hop:
        """The passages after the hop (the first hop's, then the new ones) and what was searched.

        The new passages' relevance is measured against ``question_vector`` when given: found for a
        bridge name, a passage is as near the bridge query as can be, which says nothing about whether
        the passages answer the question (the answerer's bar reads the best relevance).
        """
        started = time.perf_counter()
        form = question_form(question)
        if not passages or not form.words or not form.names:
            # A bridge is reached from something the question names ("the film shot in Varnholt"); a
            # question naming nothing has no anchor to hop from.
            return Hop(passages, (), 0.0)
        queries = self.queries(question, form, passages)
        if not queries:
            return Hop(passages, (), time.perf_counter() - started)
        seen = {p.id for p in passages}
        added: list[Passage] = []
        vectors = self.retriever.embedder.encode(queries)
        for query, vector in zip(queries, vectors, strict=True):
            found = self.retriever.retrieve(query, k=self.per_bridge + len(seen), filters=filters,
                                            relevance_to=question_vector, query_vector=vector).passages
            fresh = [p for p in found if p.id not in seen][: self.per_bridge]
            seen.update(p.id for p in fresh)
            added.extend(fresh)
        return Hop([*passages, *added], tuple(queries), time.perf_counter() - started)

    def queries(self, question: str, form: QuestionForm, passages: list[Passage]) -> list[str]:
        """The searches a second hop makes; none when a first-hop sentence answers the question."""
        views = self.verifier.views(passages)
        candidates = answer_candidates(views, form)
        if not candidates:
            return []
        answering = [c for c in candidates if c.in_context >= self.answered_cover and (c.values or not form.typed)]
        if answering:
            return []
        covered_by_passage = {title_key(v) for v in views} - {""}
        asked = {n.lower() for n in form.names}
        queries: list[str] = []
        for c in sorted(candidates, key=lambda c: -c.in_context)[:3]:
            uncovered = [w for w in re.findall(r"[\w'-]+", question)
                         if (stem := content_words(w)) and stem <= form.words and not stem <= c.words]
            for name in [*_quoted(c.span.text), *name_runs(c.span.text)]:
                key = name.lower()
                if key in asked or any(key in a or a in key for a in asked) or key in covered_by_passage:
                    continue
                query = " ".join([name, *dict.fromkeys(uncovered)])
                if query not in queries:
                    queries.append(query)
                if len(queries) >= self.bridges:
                    return queries
        return queries


def _quoted(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"[\"“]([^\"”]{2,80})[\"”]", text)]


@dataclass(frozen=True)
class Hop:
    passages: list[Passage]
    queries: tuple[str, ...]
    """What the second hop searched for (empty when it did not run)."""
    seconds: float
