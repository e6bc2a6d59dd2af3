"""Embedded local LLM: a llama.cpp server running inside this process.

:class:`LocalLLMServer` loads the model file that ``assistant.llm.gguf_model`` assembles from its part
packages into an ``xllamacpp.Server``, which serves an OpenAI-compatible API on 127.0.0.1, so any
OpenAI client (``langchain_openai.ChatOpenAI`` included) can talk to it::

    server = get_server(QWEN_0_5B, Path("models"))
    llm = ChatOpenAI(base_url=server.base_url, api_key="none", model=server.model_name)

Nothing here touches the network: the weights and the engine come from installed
packages, and the server only listens on the loopback interface.
"""

from __future__ import annotations

import atexit
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from assistant.llm.gguf_model import LLMUnavailableError, ModelSpec, assemble_model, install_hint, spec_for


def _import_xllamacpp():
    try:  # the [llm] extra: without it, the error below says how to install it
        import xllamacpp
    except ImportError as exc:
        raise LLMUnavailableError(
            f"the embedded LLM needs the `xllamacpp` package, which is not importable ({exc}); "
            f"install it with {install_hint()}"
        ) from exc
    return xllamacpp


class LocalLLMServer:
    """A llama.cpp server for one model, inside this process, on 127.0.0.1 and a free port.

    ``start()`` assembles the model if needed and loads it (seconds; note that the
    xllamacpp constructor holds the GIL while it loads). Requests go through the
    OpenAI-compatible API at :attr:`base_url`. Prompt caching is on: a request whose
    prompt shares a prefix with the previous one (a fixed system prompt) reuses that
    prefix's KV cache instead of recomputing it, and evicted prompts are kept in a RAM
    cache of ``cache_ram_mib``.

    ``threads`` should not exceed the cores that are actually free: the CPU build uses
    OpenMP threads that spin at barriers, so when another process keeps one of two cores
    busy, ``threads=2`` drops to 1-7 tokens/s while ``threads=1`` keeps most of its speed.
    """

    def __init__(
        self,
        spec: ModelSpec,
        models_dir: Path,
        n_ctx: int = 4096,
        threads: int = 2,
        *,
        parallel: int = 1,
        cache_reuse: int = 256,
        cache_ram_mib: int = 1024,
        start_timeout: float = 180.0,
        log_verbosity: int = 1,
    ) -> None:
        if n_ctx < 256:
            raise ValueError(f"n_ctx must be at least 256, got {n_ctx}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.spec = spec
        self.models_dir = Path(models_dir)
        self.n_ctx = n_ctx
        self.threads = threads
        self.parallel = max(1, parallel)
        self.cache_reuse = cache_reuse
        self.cache_ram_mib = cache_ram_mib
        self.start_timeout = start_timeout
        self.log_verbosity = log_verbosity
        self.model_path: Path | None = None
        self.startup_seconds: float | None = None
        self._server: Any = None
        self._address: str | None = None
        self._lock = threading.RLock()

    # -- properties

    @property
    def model_name(self) -> str:
        """The model id to send in requests (the server's alias for the loaded model)."""
        return self.spec.name

    @property
    def is_running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._address is None:
            raise RuntimeError("the local LLM server is not running; call start() first")
        return self._address

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.address}/v1"

    # -- lifecycle

    def _params(self, xllamacpp, model_path: Path):
        p = xllamacpp.CommonParams()
        p.model.path = str(model_path)
        p.model_alias = {self.spec.name}
        p.hostnames = ["127.0.0.1"]
        p.port = 0  # the OS picks a free port; read it back from listening_address
        p.n_ctx = self.n_ctx
        p.n_parallel = self.parallel
        p.cpuparams.n_threads = self.threads
        p.cpuparams_batch.n_threads = self.threads
        # fit_params probes the model a second time to shrink n_ctx to free memory; we
        # set n_ctx ourselves, and on CPU the probe only adds ~2 s to every start.
        p.fit_params = False
        p.cache_prompt = True  # reuse the KV cache of a shared prompt prefix
        p.n_cache_reuse = self.cache_reuse  # ...and shifted chunks of at least this many tokens
        p.cache_ram_mib = self.cache_ram_mib  # RAM cache for prompts pushed out of the slot
        p.ui = False
        p.offline = True
        p.verbosity = self.log_verbosity
        return p

    def start(self) -> LocalLLMServer:
        """Assemble and load the model and wait until the server answers; no-op if running."""
        with self._lock:
            if self._server is not None:
                return self
            xllamacpp = _import_xllamacpp()
            began = time.perf_counter()
            model_path = assemble_model(self.spec, self.models_dir)
            params = self._params(xllamacpp, model_path)
            try:
                server = xllamacpp.Server(params)
            except RuntimeError as exc:
                raise LLMUnavailableError(
                    f"llama.cpp could not load {model_path} ({exc}); delete the file to have it reassembled"
                ) from exc
            address = str(server.listening_address).rstrip("/")
            try:
                _wait_until_ready(address, self.start_timeout)
            except BaseException:
                del server
                raise
            self._server = server
            self._address = address
            self.model_path = model_path
            self.startup_seconds = time.perf_counter() - began
            return self

    def stop(self) -> None:
        """Shut the server down and free the model; safe to call twice."""
        with self._lock:
            server, self._server, self._address = self._server, None, None
            # xllamacpp stops its HTTP and inference threads in the destructor.
            del server

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self._address or "stopped"
        return f"LocalLLMServer({self.spec.name}, n_ctx={self.n_ctx}, threads={self.threads}, {state})"


def _wait_until_ready(address: str, timeout: float) -> None:
    """Poll /health (then /v1/models) until the server reports ok, or raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    while True:
        for path in ("/health", "/v1/models"):
            try:
                with opener.open(f"{address}{path}", timeout=5) as response:
                    body = response.read()
                if path == "/health":
                    if json.loads(body or b"{}").get("status") == "ok":
                        return
                    last_error = f"/health said {body[:200]!r}"
                else:
                    return
            except urllib.error.HTTPError as exc:  # 503 while the model is loading
                last_error = f"{path}: HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last_error = f"{path}: {exc}"
        if time.monotonic() >= deadline:
            raise LLMUnavailableError(
                f"the local LLM server at {address} was not ready after {timeout:.0f} s ({last_error})"
            )
        time.sleep(0.1)


# --------------------------------------------------------------------------- one per process

_server_lock = threading.Lock()
_current: LocalLLMServer | None = None


def get_server(spec: ModelSpec | str, models_dir: Path, n_ctx: int = 4096, threads: int = 2) -> LocalLLMServer:
    """The process's one running server, started on first use (thread-safe).

    Asking again with the same model and settings returns the same server; asking for a
    different model or settings stops the old one and starts the new one (one model in
    memory at a time). ``spec`` may be a size name such as ``"0.5b"``.
    """
    global _current
    if isinstance(spec, str):
        spec = spec_for(spec)
    models_dir = Path(models_dir)
    with _server_lock:
        current = _current
        if current is not None:
            same = (current.spec, current.models_dir.resolve(), current.n_ctx, current.threads) == (
                spec,
                models_dir.resolve(),
                n_ctx,
                threads,
            )
            if same:
                return current.start()
            current.stop()
            _current = None
        server = LocalLLMServer(spec, models_dir, n_ctx=n_ctx, threads=threads)
        server.start()
        _current = server
        return server


def shutdown_server() -> None:
    """Stop the process's server, if one was started by get_server()."""
    global _current
    with _server_lock:
        if _current is not None:
            _current.stop()
            _current = None


atexit.register(shutdown_server)
