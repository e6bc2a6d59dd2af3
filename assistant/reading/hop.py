"""Later retrieval hops, for questions that reach their answer through other entities.

"Who produced the best-known single of the singer born in 1970 in Varnholt?" finds the passage on the
singer, which names the single; the producer is in the single's own passage, which shares almost no
words with the question. When no passage found so far holds a sentence that answers in full (one
covering the question, with a value of the asked kind), the names in the last hop's best-matching
sentences that no retrieved passage is about are searched for, with the question's words that sentence
left uncovered, and the passages found join the others. The loop runs up to four hops in all; a
question the first hop answers costs nothing more.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np
from spacy.tokens import Doc, Token

from assistant.answer import HopStep
from assistant.passage import Passage
from assistant.reading.candidates import Candidate, answer_candidates, term_weights, title_key, weight
from assistant.reading.language import load_language
from assistant.reading.question import QuestionForm, question_form
from assistant.retrieval import Retriever
from assistant.verification import Verifier
from index.filters import Filters
from index.words import content_words


class Hops:
    """Decides whether a question needs more hops, and runs them: up to ``max_hops`` searches in all,
    the first one being the retrieval the pipeline already made."""

    def __init__(self, retriever: Retriever, verifier: Verifier, nlp_model: str, answered_cover: float = 0.65,
                 bridges: int = 2, per_bridge: int = 2, max_hops: int = 4) -> None:
        self.retriever = retriever
        self.nlp_model = nlp_model
        self.verifier = verifier
        self.answered_cover = answered_cover
        self.bridges = bridges
        self.per_bridge = per_bridge
        self.max_hops = max_hops

    def run(self, question: str, passages: list[Passage], filters: Filters,
            question_vector: np.ndarray | None = None) -> Hop:
        """The passages after the hops (the first hop's, then each later hop's finds) and what was searched.

        Each hop searches for the bridge names in the passages the hop before it found, and the loop
        stops as soon as a sentence answers the question, or a hop finds nothing new. The new passages'
        relevance is measured against ``question_vector`` when given: found for a bridge name, a passage
        is as near the bridge query as can be, which says nothing about whether the passages answer the
        question (the answerer's bar reads the best relevance).
        """
        started = time.perf_counter()
        form = question_form(question)
        if not passages or not form.words or not form.names:
            # A bridge is reached from something the question names ("the film shot in Varnholt"); a
            # question naming nothing has no anchor to hop from.
            return Hop(passages, (), 0.0)
        found_so_far = list(passages)
        # The question's words the chain had covered when each passage was found: the answer at the end
        # of a chain covers the question together with the sentences that led to it.
        reached: list[frozenset[str]] = [frozenset()] * len(passages)
        # What each passage was searched for: the question's names, or the bridge name that found it.
        anchors: list[tuple[str, ...]] = [form.names] * len(passages)
        frontier = set(range(len(passages)))
        steps: list[HopStep] = []
        searched: set[str] = set()
        for hop in range(2, self.max_hops + 1):
            bridges = [b for b in self.bridges_from(question, form, found_so_far, frontier, reached, anchors)
                       if b.query not in searched]
            if not bridges:
                break
            seen = {p.id for p in found_so_far}
            vectors = self.retriever.embedder.encode([b.query for b in bridges])
            added: list[Passage] = []
            for bridge, vector in zip(bridges, vectors, strict=True):
                searched.add(bridge.query)
                found = self.retriever.retrieve(bridge.query, k=self.per_bridge + len(seen), filters=filters,
                                                relevance_to=question_vector, query_vector=vector).passages
                fresh = [p for p in found if p.id not in seen][: self.per_bridge]
                seen.update(p.id for p in fresh)
                added.extend(fresh)
                # Only a passage that speaks of the bridge continues its chain; the search finds others.
                reached.extend(bridge.covered if _within(bridge.name.lower(), f"{p.chunk.title} {p.chunk.text}".lower())
                               else frozenset() for p in fresh)
                anchors.extend([(bridge.name,)] * len(fresh))
                steps.append(HopStep(hop, bridge.name, bridge.query))
            if not added:
                break
            frontier = set(range(len(found_so_far), len(found_so_far) + len(added)))
            found_so_far.extend(added)
        return Hop(found_so_far, tuple(steps), time.perf_counter() - started)

    def bridges_from(self, question: str, form: QuestionForm, passages: list[Passage],
                     frontier: set[int], reached: list[frozenset[str]],
                     anchors: list[tuple[str, ...]]) -> list[_Bridge]:
        """The searches the next hop makes, from the names in the ``frontier`` passages' best sentences;
        none when a sentence of any passage found so far answers the question, with the words of the
        chain that led to its passage.

        A sentence that names what its passage was searched for (the question's names, or the bridge)
        leads on before one that only shares the question's common words: "the singer Odessa Varn was
        born in Kellmouth" before another singer's "best-known single was produced by"."""
        views = self.verifier.views(passages)
        weights = term_weights(views)
        candidates = answer_candidates(views, form, weights)
        if not candidates:
            return []
        total = weight(form.words, weights, len(views)) or 1.0

        # A passage another one names is reached through the sentence naming it, whichever hop found it:
        # it inherits the words that sentence (and the chain before it) covered.
        reach = list(reached)
        titles = [title_key(v) for v in views]
        # Which sentence names which passage is fixed; only what flows along the links grows, until it stops.
        links = [(c, i) for c in candidates for i, key in enumerate(titles)
                 if key and i != c.passage and _within(key, c.span.text.lower())]
        for _ in range(self.max_hops - 1):
            before = list(reach)
            for c, i in links:
                reach[i] = reach[i] | (form.words & (c.words | c.context | reach[c.passage]))
            if reach == before:
                break

        def covered(c: Candidate) -> frozenset[str]:
            return frozenset(form.words & (c.words | c.context | reach[c.passage]))

        def share(c: Candidate) -> float:
            return weight(covered(c), weights, len(views)) / total

        def answers(c: Candidate) -> bool:
            # A value that is the name its passage was searched for ("Odessa Varn is a folk singer", found
            # for Odessa Varn) is where the hop arrived, not what the question asks.
            fresh = [v for v in c.values if not any(_within(v.lower(), a.lower()) for a in anchors[c.passage])]
            return share(c) >= self.answered_cover and (bool(fresh) or not form.typed)

        if any(answers(c) for c in candidates):
            return []
        covered_by_passage = {title_key(v) for v in views} - {""}
        asked = {n.lower() for n in form.names}
        bridges: list[_Bridge] = []
        latest = [c for c in candidates if c.passage in frontier]
        def anchored(c: Candidate) -> bool:
            text = f"{c.span.text} {c.title}".lower()
            return any(_within(a.lower(), text) for a in anchors[c.passage])

        best = sorted(latest, key=lambda c: (not anchored(c), -share(c)))[:3]
        for c, doc in zip(best, load_language(self.nlp_model).pipe(c.span.text for c in best), strict=True):
            known = covered(c)
            # The query keeps the words the sentence's title covers: they keep the search on the question.
            said = c.words | reach[c.passage]
            uncovered = [w for w in re.findall(r"[\w'-]+", question)
                         if (stem := content_words(w)) and stem <= form.words and not stem <= said]
            for name in dict.fromkeys([*_quoted(c.span.text), *_names(doc)]):
                key = name.lower()
                if any(_within(key, a) or _within(a, key) for a in asked) or key in covered_by_passage:
                    continue
                query = " ".join([name, *dict.fromkeys(uncovered)])
                if all(query != b.query for b in bridges):
                    bridges.append(_Bridge(name, query, known))
                if len(bridges) >= self.bridges:
                    return bridges
        return bridges


_BRIDGE_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC", "WORK_OF_ART", "EVENT", "PRODUCT", "LAW"})
"""The entity types a passage of its own can be about; a nationality, a date or a figure is not one."""


def _names(doc: Doc) -> list[str]:
    """The entities of a bridge type, then the runs of proper nouns the tagger found that no entity of
    another type holds (the small model tags "M. Ward" PROPN PROPN but not PERSON)."""
    names = [e.text for e in doc.ents if e.label_ in _BRIDGE_LABELS]
    other = {t.i for e in doc.ents if e.label_ not in _BRIDGE_LABELS for t in e}
    run: list[Token] = []
    for token in [*doc, None]:
        if token is not None and token.pos_ == "PROPN" and token.i not in other:
            run.append(token)
            continue
        if run:
            names.append(doc[run[0].i: run[-1].i + 1].text)
            run = []
    return names


def _within(part: str, whole: str) -> bool:
    """Whether ``part`` is ``whole`` or a run of its words: "c" is not within "carl philipp emanuel bach"."""
    return re.search(rf"(?<!\w){re.escape(part)}(?!\w)", whole) is not None


def _quoted(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"[\"“]([^\"”]{2,80})[\"”]", text)]


@dataclass(frozen=True)
class Hop:
    passages: list[Passage]
    steps: tuple[HopStep, ...]
    """What each later hop searched for (empty when the first hop's passages answered)."""
    seconds: float

    @property
    def queries(self) -> tuple[str, ...]:
        return tuple(step.query for step in self.steps)

    @property
    def count(self) -> int:
        """How many searches answered the question: 1 when the first retrieval was enough."""
        return max((step.hop for step in self.steps), default=1)


@dataclass(frozen=True)
class _Bridge:
    name: str
    query: str
    covered: frozenset[str]
    """The question's words the sentence naming the bridge covered, with the chain before it."""
