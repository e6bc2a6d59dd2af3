"""The app's engine, built in a background thread so the page and its chat input show before the model has loaded."""

from __future__ import annotations

import threading
from collections.abc import Callable

from assistant.engine import Engine
from index.settings import Settings


class EngineLoading:
    """``Engine(settings)`` built in a thread.

    ``wait()`` gives the engine, or calls ``on_failure`` and raises what building it raised.
    """

    def __init__(self, settings: Settings, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        self._done = threading.Event()
        self._engine: Engine | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._load, args=(settings,), name="chokepoint-engine", daemon=True).start()

    def _load(self, settings: Settings) -> None:
        try:
            engine = Engine(settings)
            # Engine() only opens the store: without this, the model still loaded inside the first answer
            # (measured in Chromium: benchmarks/bench_app.py).
            engine.warm()
            self._engine = engine
        except BaseException as exc:  # raised to the page that waits for it, as a one-line error
            self._error = exc
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    def wait(self) -> Engine:
        self._done.wait()
        if self._error is not None:
            self._on_failure()
            raise self._error
        assert self._engine is not None
        return self._engine
