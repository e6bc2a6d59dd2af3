"""Chokepoint over HTTP: an OpenAI-compatible chat API whose answers carry their verified citations.

    client (Open WebUI, openai SDK, LangChain) -> this app -> Engine -> AnswerPipeline

One ``Engine`` serves every request of the process. The endpoints that work (answering, searching,
indexing) run in the worker thread pool, so a slow answer never holds up the event loop; the engine
is built to answer while it reindexes. How one chat completion runs and streams is ``service.chat``;
how its answer reads is ``service.replies``, which the MCP server shares.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.answer import Turn
from assistant.engine import Engine
from assistant.llm.faults import describe
from index.indexer import IndexLockedError
from service.chat import ChatRun
from service.replies import completion, passage_dict, report_dict, without_sources
from service.schemas import ApiError, ChatRequest, FilterFields, IndexRequest, SearchRequest, parse

MODELS = {
    "chokepoint": None,  # the configured answerer (CHOKEPOINT_ANSWERER)
    "chokepoint-extractive": "extractive",
    "chokepoint-llm": "llm",
}
_STARTED = int(time.time())


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
        chat_ = ChatRun(engine, req, name, question, history)
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
    # Imported here, not at the top: mcp is an optional extra, and the API serves without it (501 at /mcp).
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
    history = [Turn(m.role, without_sources(m.content)) for m in req.messages[:last]  # type: ignore[arg-type]
               if m.role in ("user", "assistant")]
    return question, history


def _check_limits(req: FilterFields, text: str, field: str, max_chars: int, max_passages: int) -> None:
    if len(text) > max_chars:
        param = f"messages[{len(req.messages) - 1}].content" if isinstance(req, ChatRequest) else field
        raise ApiError(400, f"Field '{param}': the question is {len(text)} characters long; the limit is "
                       f"{max_chars} (CHOKEPOINT_MAX_QUESTION_CHARS). Ask a shorter question.",
                       param=param, code="question_too_long")
    if req.k is not None and not 1 <= req.k <= max_passages:
        raise ApiError(400, f"Field 'k': {req.k} passages asked for; between 1 and {max_passages} are allowed "
                       "(CHOKEPOINT_MAX_PASSAGES).", param="k", code="invalid_field")
