"""One chat completion's run: the pipeline, the extractive fallback, and the replies, whole or streamed.

The content a client shows is only ever the verified answer. A streamed reply sends each sentence as
soon as the pipeline has verified it and knows the answer will keep it (``Settled``), while the
answerer is still drafting the next: with an LLM that drafts for tens of seconds on a CPU, the reader
starts reading after the first sentence, not after the last. The draft itself is never sent, since
verification may drop or move what it says. Once the answer is complete the rest follows (the Sources
list, or the whole refusal), so the streamed content adds up to the non-streamed ``message.content``.
An answerer that fails after a sentence went out cannot be replaced by the extractive one (the client
already shows the first answer's sentences): the stream ends with an error event instead.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import Any

from assistant.answer import Answer, Turn
from assistant.engine import Engine
from assistant.llm.faults import LLMError, describe
from assistant.pipeline import AskOptions, Settled, Token
from service.replies import Reply, citations_extension, content_parts, sentence_part
from service.schemas import ApiError, ChatRequest

HEARTBEAT_S = 10.0


class ChatRun:
    """One chat completion: starts the pipeline, falls back when asked, and turns the answer into replies."""

    def __init__(self, engine: Engine, req: ChatRequest, answerer: str, question: str, history: list[Turn]) -> None:
        self.engine = engine
        self.req = req
        self.answerer = answerer
        self.question = question
        self.history = history
        self.options = AskOptions(k=req.k, filters=req.filters())
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self._events: Iterator[Any] | None = None
        self._first: Token | Settled | Answer | None = None
        self.fallback_reason = ""

    def start(self) -> None:
        """Run the pipeline to its first draft token (or its answer), so that a failing LLM is still a 502."""
        try:
            self._run(self._answerer())
        except LLMError as exc:
            self._fail_over(exc)

    def _run(self, answerer: Any) -> None:
        self._first = None
        self._events = self.engine.pipeline.stream(answerer, self.question, self.history, self.options)
        try:
            for event in self._events:
                if isinstance(event, Token | Settled | Answer):
                    self._first = event
                    return
        except ValueError as exc:  # the pipeline's own limits, should they be stricter than ours
            raise ApiError(400, str(exc), param="messages") from exc

    def _answerer(self) -> Any:
        try:
            return self.engine.answerer(self.answerer)
        except Exception as exc:
            if self.answerer != "llm":
                raise
            raise LLMError(f"The LLM could not be started: {describe(exc, self.engine.settings)}") from exc

    def _fail_over(self, exc: LLMError) -> None:
        if self.req.fallback != "extractive":
            raise ApiError(502, f"{exc} Send \"fallback\": \"extractive\" to get the extractive answer instead.",
                           type_="upstream_error", code="llm_failed") from exc
        # Nothing of the LLM's answer was sent, so the extractive answer can still take its place whole.
        self.fallback_reason = str(exc)
        self.answerer = "extractive"
        self._run(self.engine.extractive)

    @property
    def model(self) -> str:
        """The model name a reply carries: the answerer that actually answers."""
        return "chokepoint-extractive" if self.fallback_reason else _model_name(self.req.model, self.answerer)

    def _outcomes(self) -> Iterator[Settled | Answer | None]:
        """None for each draft token (a sign of life, never its text), each settled sentence, then the answer."""
        assert self._events is not None
        first, self._first = self._first, None
        for event in self._events if first is None else chain([first], self._events):
            if isinstance(event, Answer):
                yield event
                return
            yield event if isinstance(event, Settled) else None
        raise RuntimeError("the pipeline ended without an answer")

    def replies(self, *, live: bool = False) -> Iterator[Reply | Settled | None]:
        """``_outcomes`` with the answer as a reply; an LLM failure becomes the extractive answer (when allowed)
        or a 502. ``live``: each ``Settled`` is sent to the client as it comes, so after the first one a
        failure can no longer be replaced (the client shows the failed answerer's sentences)."""
        if self._events is None:
            self.start()
        sent = False
        try:
            for item in self._replies():
                sent = sent or (live and isinstance(item, Settled))
                yield item
        except LLMError as exc:
            if sent:
                raise ApiError(502, f"{exc} The answer broke off after its first verified sentences were sent; "
                               "ask again.", type_="upstream_error", code="llm_failed") from exc
            self._fail_over(exc)
            yield from self._replies()

    def _replies(self) -> Iterator[Reply | Settled | None]:
        for outcome in self._outcomes():
            yield Reply(outcome, self.model, self.fallback_reason) if isinstance(outcome, Answer) else outcome

    def complete(self) -> Reply:
        for reply in self.replies():
            if isinstance(reply, Reply):
                return reply
        raise RuntimeError("the pipeline ended without an answer")

    def events(self) -> Iterator[str]:
        """Server-sent events as OpenAI sends them: a role chunk, content chunks (each verified sentence as
        it settles, then the rest of the message), a finish chunk, [DONE]."""
        yield _sse(self._chunk({"role": "assistant", "content": ""}))
        reply: Reply | None = None
        settled: list[Settled] = []
        beat = time.monotonic()
        try:
            for item in self.replies(live=True):
                if isinstance(item, Settled):
                    yield _sse(self._chunk({"content": sentence_part(item.sentence, len(settled))}, model=self.model))
                    settled.append(item)
                    beat = time.monotonic()
                elif isinstance(item, Reply):
                    reply = item
                elif time.monotonic() - beat > HEARTBEAT_S:
                    # A slow LLM drafts for a minute on a CPU: an SSE comment keeps proxies and clients waiting.
                    beat = time.monotonic()
                    yield ": drafting\n\n"
        except ApiError as exc:
            # The status line went out with the first chunk; an error event is how OpenAI reports a late failure.
            yield _sse(exc.body())
            return
        assert reply is not None
        answer = reply.answer
        parts = content_parts(answer)
        if [s.sentence for s in settled] != list(answer.sentences[: len(settled)]) or (settled and answer.refused):
            # The pipeline hands on only sentences its answer keeps; should that ever fail, say so rather
            # than leave the client with content the answer does not have.
            yield _sse(ApiError(500, "The streamed sentences differ from the final answer; ask again without "
                                "streaming.", type_="server_error", code="stream_mismatch").body())
            return
        for part in parts[len(settled):]:
            yield _sse(self._chunk({"content": part}, model=reply.model))
        final = self._chunk({}, model=reply.model, finish_reason="stop")
        final["citations"] = citations_extension(reply)
        if self.req.include_answer:
            final["answer"] = answer.as_dict()
        yield _sse(final)
        yield "data: [DONE]\n\n"

    def _chunk(self, delta: dict[str, Any], *, model: str | None = None,
               finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": model or _model_name(self.req.model, self.answerer), "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _model_name(requested: str, answerer: str) -> str:
    return requested if requested != "chokepoint" else f"chokepoint-{answerer}"
