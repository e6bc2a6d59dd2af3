"""Answerers turn a question and its passages into a draft with [n] markers, streamed.

Two kinds, one interface (``draft``): the extractive answerer (``assistant.reading.extractive``) quotes
the passages' sentences that answer (no LLM: the offline fallback and the fast mode), the LLM
answerer here asks any OpenAI-compatible chat endpoint. Either draft is then verified by ``assistant.verification``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any, Protocol

from assistant.answer import Turn
from assistant.followup import contextual_query, is_elliptical, rewrite_prompt
from assistant.llm.faults import LLMError
from assistant.llm.prompts import SYSTEM_PROMPT, excerpts, user_prompt
from assistant.llm.reader import (
    DECLINED,
    Numbered,
    passage_markers,
    passages_with_sentences,
    reader_messages,
    response_format,
    shortlist,
)
from assistant.llm.reply_parser import MalformedReply, ReplyParser
from assistant.passage import Passage
from assistant.sentence_vectors import SentenceVectors

log = logging.getLogger(__name__)


class Answerer(Protocol):
    name: str

    def standalone_query(self, question: str, history: Sequence[Turn]) -> str:
        """The question as it should be searched, given the conversation."""
        ...

    def passages_for_prompt(self, query: str, passages: list[Passage]) -> list[Passage]:
        """The passages the draft's [n] markers number, in order (the ones verified against)."""
        ...

    def draft(self, question: str, query: str, passages: list[Passage]) -> Iterator[str]:
        """Stream the answer's text; [n] refers to ``passages[n - 1]``."""
        ...


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
    # Here, not at the top: openai takes seconds to import, and only the LLM answerer needs it.
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
    """Asks an OpenAI-compatible chat model (embedded llama.cpp, Ollama, vLLM, OpenAI ...).

    The reader (``assistant.llm.reader``) shows the model the passages' best-matching sentences and asks
    for a JSON reply through ``response_format``; the answer text streams as it is decoded. An endpoint
    that rejects ``response_format``, or replies with something other than the JSON asked for, gets
    the free-text prompt of ``assistant.llm.prompts`` instead: for this question, and (once it has shown
    it cannot follow the schema) for every later one this answerer asks.
    """

    name = "llm"

    def __init__(self, chat_model: Any, prompt_tokens: int = 900, *, vectors: SentenceVectors | None = None,
                 max_sentences: int = 8, sentence_tokens: int = 260) -> None:
        self.chat_model = chat_model
        self.prompt_tokens = prompt_tokens
        """Passage text in the free-text prompt (cl100k tokens)."""
        self.vectors = vectors
        """The verifier's sentence-vector cache: ranks sentences by meaning, not only shared words."""
        self.max_sentences = max_sentences
        self.sentence_tokens = sentence_tokens
        """Sentence text in the reader's prompt (cl100k tokens)."""
        self.free_text_because: str | None = None
        """Why this endpoint gets the free-text prompt (None while it takes ``response_format``)."""

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
        """The passages the prompt will number, in order: those that supplied a shortlisted sentence
        (or, in free text, those that fit the token budget)."""
        if self.free_text_because is None:
            numbered = self._shortlist(query, passages)
            if numbered:
                return passages_with_sentences(passages, numbered)
        return [excerpt.passage for excerpt in excerpts(query, passages, self.prompt_tokens)]

    def prompt(self, query: str, passages: list[Passage]) -> list[tuple[str, str]]:
        """The messages a draft over ``passages`` sends first (for measuring the prompt)."""
        numbered = self._shortlist(query, passages) if self.free_text_because is None else []
        if numbered:
            return reader_messages(query, numbered)
        return [("system", SYSTEM_PROMPT), ("user", user_prompt(query, excerpts(query, passages, self.prompt_tokens)))]

    def draft(self, question: str, query: str, passages: list[Passage]) -> Iterator[str]:
        if self.free_text_because is None:
            numbered = self._shortlist(query, passages)
            if numbered:
                finished = yield from self._read(query, numbered)
                if finished:
                    return
        yield from self._free_text(query, passages)

    def _shortlist(self, query: str, passages: list[Passage]) -> list[Numbered]:
        return shortlist(query, passages, self.vectors, max_sentences=self.max_sentences,
                         budget_tokens=self.sentence_tokens)

    def _read(self, query: str, numbered: list[Numbered]) -> Generator[str, None, bool]:
        """Stream the reader's answer text, then its passage markers; False when free text must take over.

        Free text takes over only while nothing has been shown: once answer text went out, a reply
        that breaks off ends the draft there, and the verifier checks what was shown.
        """
        # Here, not at the top: openai takes seconds to import, and only the LLM answerer needs it.
        import openai

        parser = ReplyParser()
        shown = received = False
        broke_off = ""
        stream = self.chat_model.stream(reader_messages(query, numbered),
                                        response_format=response_format(len(numbered)))
        try:
            with closing(stream):  # closing the stream ends the request at once, freeing the server's slot
                for piece in stream:
                    text = piece.content if isinstance(piece.content, str) else ""
                    if not text:
                        continue
                    received = True
                    try:
                        answer = parser.feed(text)
                    except MalformedReply as exc:
                        if not shown:
                            self._fall_back(f"replied with something other than the JSON asked for ({exc})",
                                            remember=True)
                            return False
                        broke_off = str(exc)
                        break
                    if parser.answerable is False:
                        continue  # a declined reply's text is not an answer, whatever it says
                    if not shown:
                        answer = answer.lstrip()
                    if answer:
                        shown = True
                        yield answer
        except openai.LengthFinishReasonError:
            broke_off = "cut off at max_tokens"  # what was read is judged below
        except Exception as exc:
            if not shown and _rejects_response_format(exc):
                self._fall_back(f"rejected response_format ({_short(exc)})", remember=True)
                return False
            if not received and not isinstance(exc, openai.APIStatusError | openai.APIConnectionError):
                # The structured-output stream reader is stricter than the plain one (an event without
                # "choices" stops it): let the plain request read it, or name what is wrong with it.
                self._fall_back(f"sent events the structured-output reader cannot read ({_short(exc)})",
                                remember=False)
                return False
            raise LLMError(_llm_failure(exc, self.chat_model)) from exc
        if not received:
            # An endpoint that streams well-formed events with no text is broken, not refusing:
            # passing on an empty draft would turn the fault into a silent "not covered".
            raise LLMError(f"The LLM at {_endpoint(self.chat_model)} sent no text. {_CHECK_ENDPOINT}")
        if not shown:
            try:
                parser.result()
            except MalformedReply as exc:
                # A finished object without an answer string: the endpoint does not follow the schema.
                # An unfinished one was cut short (max_tokens), which says nothing about the endpoint.
                self._fall_back(f"sent a reply without the answer asked for ({exc})", remember=parser.done)
                return False
            yield DECLINED  # declined, or "answered" with blank text
            return True
        if not parser.done:
            why = broke_off or f"unfinished after {parser.read} characters"
            log.warning("The LLM at %s broke off its JSON reply after the answer text (%s); verifying the text "
                        "it sent.", _endpoint(self.chat_model), why)
        markers = passage_markers(parser.partial().support, numbered)
        if markers:
            yield f" {markers}"
        return True

    def _fall_back(self, why: str, *, remember: bool) -> None:
        until = "from now on" if remember else "for this question"
        log.warning("The LLM at %s %s; using the free-text prompt %s.", _endpoint(self.chat_model), why, until)
        if remember:
            self.free_text_because = why

    def _free_text(self, query: str, passages: list[Passage]) -> Iterator[str]:
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


_NAMES_THE_FORMAT = re.compile(r"response_format|json[ _-]?schema|\bschema\b|\bgrammar\b", re.I)


def _rejects_response_format(exc: Exception) -> bool:
    """An HTTP 4xx whose message names response_format or the schema: the endpoint cannot constrain output."""
    # Here, not at the top: openai takes seconds to import, and only the LLM answerer needs it.
    import openai

    return (isinstance(exc, openai.APIStatusError) and 400 <= exc.status_code < 500
            and bool(_NAMES_THE_FORMAT.search(f"{exc} {exc.body}")))


def _short(exc: Exception) -> str:
    """The error in one short line, for the log."""
    status = getattr(exc, "status_code", None)
    detail = " ".join(str(exc).split())[:160]
    return f"HTTP {status}: {detail}" if status else f"{type(exc).__name__}: {detail}"


def strip_markup(text: str) -> str:
    """Drop HTML tags and links a model may emit, and the loops small models fall into ("X, X, X, X")."""
    text = re.sub(r"<[^>\n]{1,200}>", "", text)
    # The prompt's quoting marks and links: citations carry the sources' own URLs, the prose needs none.
    text = re.sub(r"<<<|>>>|https?://\S+|\bwww\.\S+", " ", text)
    return re.sub(r"\b(\w[^,.;\n]{2,80}?)(?:\s*,\s*\1\b)+", r"\1", text)
