"""Chokepoint over HTTP: an OpenAI-compatible chat API whose answers carry their verified citations.

    client (Open WebUI, openai SDK, LangChain) -> this app -> Engine -> AnswerPipeline

One ``Engine`` serves every request of the process. The endpoints that work (answering, searching,
indexing) run in the worker thread pool, so a slow answer never holds up the event loop; the engine
is built to answer while it reindexes.

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

import hmac
import ipaddress
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.answer import Answer, AnswerSentence, Turn
from assistant.answerers import LLMError
from assistant.engine import Engine
from assistant.faults import describe
from assistant.pipeline import AskOptions, Settled, Token
from assistant.retrieval import Passage
from assistant.verification import render
from index.indexer import IndexLockedError, IndexReport
from service.schemas import ApiError, ChatRequest, FilterFields, IndexRequest, SearchRequest, parse

MODELS = {
    "chokepoint": None,  # the configured answerer (CHOKEPOINT_ANSWERER)
    "chokepoint-extractive": "extractive",
    "chokepoint-llm": "llm",
}
SOURCES_HEADING = "**Sources**"
HEARTBEAT_S = 10.0
_STARTED = int(time.time())


@dataclass(frozen=True)
class Reply:
    """A finished answer and how it was reached."""

    answer: Answer
    model: str
    fallback_reason: str = ""
    """Why the extractive answerer answered in place of the LLM (the request allowed it), if it did."""


def create_app(engine: Engine, *, host: str | None = None) -> FastAPI:
    """The API over ``engine``; its settings say the token, the body limit and the allowed origins.

    ``host`` is the address the server listens on (default ``CHOKEPOINT_API_HOST``): on loopback the MCP
    endpoint refuses requests whose Host header names another machine (DNS rebinding).
    """
    settings = engine.settings
    token = settings.api_token.get_secret_value() if settings.api_token else None
    mcp = _mcp_session_manager(engine, host or settings.api_host)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if mcp is None:
            yield
            return
        async with mcp.run():  # the MCP sessions' task group lives as long as the server
            yield

    app = FastAPI(title="Chokepoint", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    if settings.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.api_cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], expose_headers=["Mcp-Session-Id"],
                           allow_headers=["Authorization", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version",
                                          "Last-Event-ID"])

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = (f"No route {request.method} {request.url.path}: see GET /v1/models, POST /v1/chat/completions, "
                   "POST /v1/search, GET /v1/status, POST /v1/index, /mcp (MCP)." if exc.status_code in (404, 405)
                   else str(exc.detail))
        return JSONResponse(ApiError(exc.status_code, message).body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # One line that names the path or setting at fault, as the CLI prints; the traceback stays in the log.
        return JSONResponse(ApiError(500, describe(exc, settings), type_="server_error").body(), status_code=500)

    def authorize(request: Request, *, write: bool = False) -> None:
        if token is None:
            if write:
                raise ApiError(403, "Indexing over the API is disabled: set CHOKEPOINT_API_TOKEN on the server and "
                               "send it as 'Authorization: Bearer <token>'.", type_="permission_error",
                               code="no_token_configured")
            return
        sent = request.headers.get("authorization", "")
        scheme, _, value = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            what = "a wrong" if sent else "no"
            raise ApiError(401, f"The request sent {what} API token: send CHOKEPOINT_API_TOKEN as "
                           "'Authorization: Bearer <token>' (the openai client's api_key).",
                           type_="authentication_error", code="invalid_api_key")

    async def body(request: Request) -> bytes:
        """The raw body, refused (413) as soon as it passes the limit, declared or not."""
        limit = settings.api_max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        received = bytearray()
        async for part in request.stream():
            received += part
            if len(received) > limit:
                raise _too_large(len(received), limit)
        return bytes(received)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"object": "list", "data": [_model_card(name) for name in MODELS]}

    @app.get("/v1/models/{name}")
    async def model(name: str, request: Request) -> dict[str, Any]:
        authorize(request)
        _answerer_name(name, settings.answerer)
        return _model_card(name)

    @app.get("/v1/status")
    async def status(request: Request) -> dict[str, Any]:
        authorize(request)
        result = await run_in_threadpool(engine.status)
        return result.as_dict()

    @app.post("/v1/search")
    async def search(request: Request) -> dict[str, Any]:
        authorize(request)
        req = parse(SearchRequest, await body(request))
        _check_limits(req, req.query, "query", settings.max_question_chars, settings.max_passages)
        result = await run_in_threadpool(engine.retriever.retrieve, req.query, req.k, req.filters())
        return {"object": "list", "query": req.query, "seconds": round(result.seconds, 4),
                "data": [passage_dict(p, rank) for rank, p in enumerate(result.passages, start=1)]}

    @app.post("/v1/index")
    async def reindex(request: Request) -> dict[str, Any]:
        authorize(request, write=True)
        req = parse(IndexRequest, await body(request))
        try:
            report = await run_in_threadpool(lambda: engine.reindex(rebuild=req.rebuild))
        except IndexLockedError as exc:
            raise ApiError(409, f"{exc} Send the request again once it has finished.", code="index_locked") from exc
        return report_dict(report)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Response | dict[str, Any]:
        authorize(request)
        req = parse(ChatRequest, await body(request))
        name = _answerer_name(req.model, settings.answerer)
        question, history = _conversation(req)
        _check_limits(req, question, "messages", settings.max_question_chars, settings.max_passages)
        chat_ = _Chat(engine, req, name, question, history)
        if not req.stream:
            reply = await run_in_threadpool(chat_.complete)
            result = completion(reply, chat_.id, chat_.created)
            if req.include_answer:
                result["answer"] = reply.answer.as_dict()
            return result
        await run_in_threadpool(chat_.start)  # failures before the first draft token still get their status
        return StreamingResponse(chat_.events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    if mcp is not None:
        app.router.routes.append(Route("/mcp", endpoint=_Authorized(mcp.handle_request, authorize)))
    else:
        @app.api_route("/mcp", methods=["GET", "POST", "DELETE"])
        async def no_mcp(request: Request) -> None:
            authorize(request)
            raise ApiError(501, "MCP is not installed on this server: pip install -e '.[mcp]' (make install "
                           "includes it) and restart chokepoint serve.", type_="server_error", code="mcp_missing")

    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mcp_session_manager(engine: Engine, host: str) -> Any:
    """The Streamable HTTP session manager of an MCP server over ``engine``; None without the mcp extra."""
    try:
        from mcp.server.transport_security import TransportSecuritySettings

        from service.mcp_server import create_server
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("mcp", "mcp_types"):
            return None
        raise
    settings = engine.settings
    origins = list(settings.api_cors_origins)
    if is_loopback(host):
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *origins])
    else:
        # Reached by other machines under names we cannot know: the token is the guard (serve warns without one).
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    server = create_server(engine)
    # Builds the session manager; the Starlette app it returns is not used: create_app routes /mcp to it.
    server.streamable_http_app(streamable_http_path="/mcp", transport_security=security,
                               max_request_body_size=settings.api_max_body_bytes)
    return server.session_manager


class _Authorized:
    """An ASGI app behind the API's token check (a Starlette route calls a class instance as plain ASGI)."""

    def __init__(self, app: ASGIApp, authorize: Callable[[Request], None]) -> None:
        self.app = app
        self.authorize = authorize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.authorize(Request(scope))
        except ApiError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            await JSONResponse(exc.body(), status_code=exc.status, headers=headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _Chat:
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


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, f"The request body is {size} bytes; the limit is {limit} (CHOKEPOINT_API_MAX_BODY_BYTES). "
                    "Send a shorter conversation.", code="request_too_large")


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "chokepoint"}


def _answerer_name(model: str, default: str) -> str:
    if model not in MODELS:
        raise ApiError(404, f"The model '{model}' does not exist: use one of {', '.join(MODELS)} (GET /v1/models).",
                       param="model", code="model_not_found")
    return MODELS[model] or default


def _model_name(requested: str, answerer: str) -> str:
    return requested if requested != "chokepoint" else f"chokepoint-{answerer}"


def _conversation(req: ChatRequest) -> tuple[str, list[Turn]]:
    """The last user message is the question; earlier user and assistant messages are the history.

    System messages are not followed: what the answer may say is decided by the sources and the
    verifier, not by the client's prompt.
    """
    last = len(req.messages) - 1
    if req.messages[last].role != "user":
        raise ApiError(400, f"Field 'messages[{last}].role': the last message must be the user's question, "
                       f"not '{req.messages[last].role}'.", param=f"messages[{last}].role", code="invalid_field")
    question = req.messages[last].content.strip()
    if not question:
        raise ApiError(400, f"Field 'messages[{last}].content': the question is empty. Send its text.",
                       param=f"messages[{last}].content", code="invalid_field")
    history = [Turn(m.role, _without_sources(m.content)) for m in req.messages[:last]  # type: ignore[arg-type]
               if m.role in ("user", "assistant")]
    return question, history


def _without_sources(content: str) -> str:
    # Clients send our replies back as history; the rewriter needs the answer, not its reference list.
    return content.split(f"\n\n{SOURCES_HEADING}", 1)[0]


def _check_limits(req: FilterFields, text: str, field: str, max_chars: int, max_passages: int) -> None:
    if len(text) > max_chars:
        param = f"messages[{len(req.messages) - 1}].content" if isinstance(req, ChatRequest) else field
        raise ApiError(400, f"Field '{param}': the question is {len(text)} characters long; the limit is "
                       f"{max_chars} (CHOKEPOINT_MAX_QUESTION_CHARS). Ask a shorter question.",
                       param=param, code="question_too_long")
    if req.k is not None and not 1 <= req.k <= max_passages:
        raise ApiError(400, f"Field 'k': {req.k} passages asked for; between 1 and {max_passages} are allowed "
                       "(CHOKEPOINT_MAX_PASSAGES).", param="k", code="invalid_field")


def completion(reply: Reply, id_: str, created: int) -> dict[str, Any]:
    """A ``chat.completion`` object, with the ``citations`` extension."""
    answer = reply.answer
    content = "".join(content_parts(answer))
    return {
        "id": id_, "object": "chat.completion", "created": created, "model": reply.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": None,
        "citations": citations_extension(reply),
    }


def content_parts(answer: Answer) -> list[str]:
    """The message content in the pieces a stream sends: one per sentence, then the Sources list (or the
    refusal, whole). Joined, the sentences are ``answer.text``."""
    if answer.refused:
        return [refusal_text(answer)]
    return [*(sentence_part(s, n) for n, s in enumerate(answer.sentences)), sources_markdown(answer)]


def sentence_part(sentence: AnswerSentence, position: int) -> str:
    """One sentence as the answer's text renders it, with the space that joins it to the one before."""
    return (" " if position else "") + render([sentence])


def refusal_text(answer: Answer) -> str:
    return f"{answer.text}\n\n_{answer.refusal_reason}_" if answer.refusal_reason else answer.text


def sources_markdown(answer: Answer) -> str:
    """The numbered reference list under the answer, for a chat client that renders Markdown."""
    lines = [f"\n\n{SOURCES_HEADING}\n"]
    for citation in answer.citations:
        chunk = citation.chunk
        bits = [chunk.title or chunk.source, *(b for b in (chunk.publisher, chunk.date) if b)]
        if chunk.page:
            bits.append(f"p. {chunk.page}")
        link = f" <{chunk.url}>" if chunk.url else ""
        quote = " ".join(citation.supporting_text.split())
        quote = quote if len(quote) <= 300 else quote[:297] + "..."
        lines.append(f"- [{citation.n}] {', '.join(bits)} — `{chunk.source}`{link}\n  > {quote}")
    return "\n".join(lines)


def citations_extension(reply: Reply) -> dict[str, Any]:
    """The structured citations: what a client needs to show or check the span behind each [n]."""
    answer = reply.answer
    return {
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "fallback_reason": reply.fallback_reason,
        "query": answer.query,
        "items": [
            {"n": c.n, "source": c.chunk.source, "title": c.chunk.title, "url": c.chunk.url, "page": c.chunk.page,
             "publisher": c.chunk.publisher, "date": c.chunk.date, "heading": c.chunk.heading,
             "chunk_id": c.chunk.id, "quote": c.supporting_text, "start": c.support_start, "end": c.support_end,
             "chunk_start": c.chunk.start, "chunk_end": c.chunk.end}
            for c in answer.citations
        ],
        "sentences": [{"text": s.text, "citations": list(s.citations), "status": s.status}
                      for s in answer.sentences],
    }


def passage_dict(p: Passage, rank: int) -> dict[str, Any]:
    chunk = p.chunk
    return {"rank": rank, "score": round(p.score, 5), "relevance": round(p.relevance, 4), "id": chunk.id,
            "source": chunk.source, "title": chunk.title, "heading": chunk.heading, "publisher": chunk.publisher,
            "date": chunk.date, "url": chunk.url, "page": chunk.page, "topics": list(chunk.topics),
            "start": chunk.start, "end": chunk.end, "text": chunk.text}


def report_dict(report: IndexReport) -> dict[str, Any]:
    """What ``chokepoint index --json`` prints, plus its one-line summary."""
    return {**report.as_dict(), "summary": report.summary()}
