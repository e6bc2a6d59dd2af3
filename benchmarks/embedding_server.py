"""A real OpenAI-compatible embeddings server: FastAPI over the packaged MiniLM, on uvicorn.

Used by tests/test_remote_embedding.py and benchmarks/bench_remote_embedding.py.

It speaks the protocol text-embeddings-inference and OpenAI speak (``POST /v1/embeddings``) and can
play a few other servers: one that names another model, one whose vectors differ from the packaged
model's (its components reversed: the same geometry, another model to a cosine test), one that
fails its first requests with 500.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from index.embedding import Embedder


@dataclass
class ServerState:
    """How the server behaves, and what it saw (read by the tests)."""

    reported_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    reversed_vectors: bool = False
    failures_left: int = 0
    delay_s: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_app(embedder: Embedder, state: ServerState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: dict, request: Request) -> JSONResponse:  # sync: FastAPI runs it in its thread pool
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return JSONResponse({"error": {"message": "input must be a string or a list of strings"}}, 400)
        with state.lock:
            if state.failures_left > 0:
                state.failures_left -= 1
                return JSONResponse({"error": {"message": "model is warming up"}}, 500)
            state.batch_sizes.append(len(texts))
            state.in_flight += 1
            state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            time.sleep(state.delay_s)  # keeps requests overlapping long enough to count them
            vectors = embedder.encode(texts)
        finally:
            with state.lock:
                state.in_flight -= 1
        if state.reversed_vectors:
            vectors = vectors[:, ::-1]
        # Scaled: a server need not normalise, the client does. Listed out of order: clients sort by index.
        data = [{"object": "embedding", "index": i, "embedding": (2.0 * v).tolist()} for i, v in enumerate(vectors)]
        return JSONResponse({"object": "list", "data": data[::-1], "model": state.reported_model,
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    return app


@contextmanager
def embedding_server(embedder: Embedder, state: ServerState | None = None) -> Iterator[tuple[str, ServerState]]:
    """The server on a free loopback port, in a thread of this process; yields (base URL, its state)."""
    state = state or ServerState()
    server = uvicorn.Server(uvicorn.Config(make_app(embedder, state), log_level="warning"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here, handed to uvicorn: no race for the port
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("the test embeddings server did not start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
