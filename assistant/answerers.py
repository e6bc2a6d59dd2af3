"""Answerers turn a question and its passages into a draft with [n] markers, streamed.

Two kinds, one interface (``draft``): the extractive answerer picks sentences from the
passages (no LLM: the offline fallback and the fast mode), the LLM answerer asks any
OpenAI-compatible chat endpoint. Either draft is then verified by ``assistant.verification``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from assistant.answer import Turn
from assistant.followup import contextual_query, is_elliptical, rewrite_prompt
from assistant.prompts import SYSTEM_PROMPT, excerpts, user_prompt
from assistant.retrieval import Passage
from assistant.text import Span, content_words, numbers
from assistant.verification import Verifier, is_gap_statement


class Answerer(Protocol):
    name: str

    def standalone_query(self, question: str, history: Sequence[Turn]) -> str:
        """The question as it should be searched, given the conversation."""
        ...

    def draft(self, question: str, query: str, passages: list[Passage]) -> Iterator[str]:
        """Stream the answer's text; [n] refers to ``passages[n - 1]``."""
        ...


class ExtractiveAnswerer:
    """Answers with the passages' own sentences that best match the question."""

    name = "extractive"

    def __init__(self, verifier: Verifier, max_sentences: int = 3, floor: float = 0.45,
                 gap_margin: float = 0.12, shortlist: int = 16) -> None:
        self.verifier = verifier
        self.max_sentences = max_sentences
        self.floor = floor
        self.gap_margin = gap_margin
        self.shortlist = shortlist

    def standalone_query(self, question: str, history: Sequence[Turn]) -> str:
        return contextual_query(question, history)

    def draft(self, question: str, query: str, passages: list[Passage]) -> Iterator[str]:
        for sentence, n in self.select(question, query, passages):
            yield f"{clean_sentence(sentence.text)} [{n}]\n"

    def select(self, question: str, query: str, passages: list[Passage]) -> list[tuple[Span, int]]:
        """Chosen sentences with their passage number, in reading order."""
        candidates = [(n, span) for n, view in enumerate(self.verifier.views(passages), start=1)
                      for span in view.spans if _answer_candidate(span.text)]
        if not candidates:
            return []
        # In a follow-up ("and in 2014?") the user's own words say which fact they want now.
        focus = content_words(question) if question != query else content_words(query)
        query_words = content_words(query)
        overlap = [(len(focus & words) / len(focus) if focus else 0.0,
                    len(query_words & words) / len(query_words) if query_words else 0.0)
                   for words in (content_words(span.text) for _, span in candidates)]
        # Embedding every sentence of every passage is what made an answer slow (~10 ms a sentence on
        # one core): only the sentences sharing most words with the question are embedded and ranked.
        if len(candidates) > self.shortlist:
            keep = sorted(range(len(candidates)),
                          key=lambda i: -(overlap[i][1] + 0.35 * overlap[i][0] - 0.01 * (candidates[i][0] - 1)))
            keep = sorted(keep[: self.shortlist])
            candidates = [candidates[i] for i in keep]
            overlap = [overlap[i] for i in keep]
        vectors = self.verifier.vectors.encode([span.text for _, span in candidates])
        query_vector = self.verifier.vectors.encode([query])[0]
        similarity = vectors @ query_vector
        scores = np.empty(len(candidates), dtype=np.float32)
        for i, (n, _) in enumerate(candidates):
            scores[i] = similarity[i] + 0.35 * overlap[i][0] - 0.01 * (n - 1)
        order = np.argsort(-scores)
        gaps = np.array([is_gap_statement(span.text) for _, span in candidates])
        best_gap = scores[gaps].max(initial=-np.inf)
        best_fact = scores[~gaps].max(initial=-np.inf)
        if best_gap >= self.floor and best_gap >= best_fact + self.gap_margin:
            # The clearly best match says the sources are silent on the point: pass that on, not weaker
            # neighbours. (A gap statement only a little ahead is often a caveat beside the real answer.)
            top = int(np.flatnonzero(gaps & (scores == best_gap))[0])
            return [(candidates[top][1], candidates[top][0])]
        chosen: list[int] = []
        for i in order:
            if scores[i] < self.floor or len(chosen) >= self.max_sentences:
                break
            if is_gap_statement(candidates[i][1].text):
                continue
            if any(_repeats(candidates[i][1].text, candidates[j][1].text, float(vectors[i] @ vectors[j]))
                   for j in chosen):
                continue
            chosen.append(int(i))
        chosen.sort(key=lambda i: (candidates[i][0], candidates[i][1].start))
        return [(candidates[i][1], candidates[i][0]) for i in chosen]


class LLMError(RuntimeError):
    """The LLM endpoint failed: unreachable, too slow, or not speaking the OpenAI chat API."""


_CHECK_ENDPOINT = (
    "Check that CHOKEPOINT_LLM_URL (or the endpoint URL in the sidebar) is an OpenAI-compatible "
    "endpoint ending in /v1, or use the extractive answerer."
)


def _endpoint(chat_model: Any) -> str:
    return str(getattr(chat_model, "openai_api_base", None) or "the configured endpoint")


@contextmanager
def _endpoint_errors(chat_model: Any) -> Iterator[None]:
    """Re-raise whatever the client raises as an ``LLMError`` that names the endpoint and the fix."""
    try:
        yield
    except LLMError:
        raise
    except Exception as exc:
        raise LLMError(_llm_failure(exc, chat_model)) from exc


def _llm_failure(exc: Exception, chat_model: Any) -> str:
    import openai

    url = _endpoint(chat_model)
    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    if isinstance(exc, openai.APITimeoutError):
        timeout = getattr(chat_model, "request_timeout", None)
        within = f" within {timeout:g} s" if isinstance(timeout, int | float) else " in time"
        return (f"The LLM at {url} did not answer{within} (CHOKEPOINT_LLM_TIMEOUT_S). Check that the server is "
                "up and not overloaded, raise the timeout, or use the extractive answerer.")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return (f"Cannot reach the LLM at {url} ({type(cause).__name__}: {' '.join(str(cause).split())[:120]}). "
                f"Start the server, or fix the URL. {_CHECK_ENDPOINT}")
    if isinstance(exc, openai.APIStatusError):
        return (f"The LLM at {url} answered with an error (HTTP {exc.status_code}: {detail}). Check the model "
                "name (CHOKEPOINT_LLM_MODEL) and the API key (CHOKEPOINT_LLM_API_KEY).")
    # Anything else came from reading the reply: HTML, JSON that is not a chat completion, broken events.
    return (f"The LLM at {url} sent a reply that is not an OpenAI chat completion "
            f"({type(exc).__name__}: {detail}). {_CHECK_ENDPOINT}")


class LLMAnswerer:
    """Asks an OpenAI-compatible chat model (embedded llama.cpp, Ollama, vLLM, OpenAI ...)."""

    name = "llm"

    def __init__(self, chat_model: Any, prompt_tokens: int = 900) -> None:
        self.chat_model = chat_model
        self.prompt_tokens = prompt_tokens

    def standalone_query(self, question: str, history: Sequence[Turn]) -> str:
        if not history or not is_elliptical(question):
            return question
        with _endpoint_errors(self.chat_model):
            reply = self.chat_model.invoke(rewrite_prompt(question, history), max_tokens=60)
        rewritten = str(reply.content).strip().splitlines()[0].strip().strip('"') if reply.content else ""
        # A rewrite that lost the question (empty, or a chatty reply) falls back to the plain rule.
        if not rewritten or len(rewritten) > 400:
            return contextual_query(question, history)
        return rewritten

    def passages_for_prompt(self, query: str, passages: list[Passage]) -> list[Passage]:
        """The passages the prompt will number, in order (those that fit the token budget)."""
        return [excerpt.passage for excerpt in excerpts(query, passages, self.prompt_tokens)]

    def draft(self, question: str, query: str, passages: list[Passage]) -> Iterator[str]:
        quoted = excerpts(query, passages, self.prompt_tokens)
        messages = [("system", SYSTEM_PROMPT), ("user", user_prompt(query, quoted))]
        wrote = False
        with _endpoint_errors(self.chat_model):
            for piece in self.chat_model.stream(messages):
                text = piece.content if isinstance(piece.content, str) else ""
                if text:
                    wrote = True
                    yield text
        if not wrote:
            # An endpoint that streams well-formed events with no text is broken, not refusing:
            # passing on an empty draft would turn the fault into a silent "not covered".
            raise LLMError(f"The LLM at {_endpoint(self.chat_model)} sent no text. {_CHECK_ENDPOINT}")


_ABOUT_THE_NOTE = re.compile(r"\bthis (note|overview|glossary)\b", re.I)


def _answer_candidate(text: str) -> bool:
    """Whether a passage sentence can stand in an answer: not a scrap, a table row or a remark on the note itself."""
    text = clean_sentence(text)
    return (
        len(text) >= 25
        and not text.startswith("|")
        and not _ABOUT_THE_NOTE.search(text)
    )


def strip_markup(text: str) -> str:
    """Drop HTML tags and links a model may emit, and the loops small models fall into ("X, X, X, X")."""
    text = re.sub(r"<[^>\n]{1,200}>", "", text)
    # The prompt's quoting marks and links: citations carry the sources' own URLs, the prose needs none.
    text = re.sub(r"<<<|>>>|https?://\S+|\bwww\.\S+", " ", text)
    return re.sub(r"\b(\w[^,.;\n]{2,80}?)(?:\s*,\s*\1\b)+", r"\1", text)


def clean_sentence(text: str) -> str:
    """A passage sentence as prose: no hard wraps, list bullets or bold markers."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^([-*•]|\d+\.)\s+", "", text)
    text = re.sub(r"^\*\*[^*]{1,80}\*\*\s*[-–—:]?\s*", "", text)  # "**2014 and 2020.** ..." lead-ins
    return text.replace("**", "")


def _repeats(a: str, b: str, similarity: float) -> bool:
    """Whether sentence ``a`` says again what ``b`` said (near-same meaning, or same figures and words)."""
    if similarity > 0.85:
        return True
    words_a, words_b = content_words(a), content_words(b)
    jaccard = len(words_a & words_b) / max(1, len(words_a | words_b))
    shared_numbers = numbers(a) and numbers(a) <= numbers(b)
    return similarity > 0.6 and (jaccard > 0.4 or bool(shared_numbers))
