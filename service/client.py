"""The CLI's way to a running ``chokepoint serve``: find one that serves the same index, and ask it.

    chokepoint ask -> find_server(settings) -> RemoteServer.ask(...) -> what ``chokepoint ask --json`` prints

A server is used only when its ``GET /v1/status`` names this process's data dir, collection and store:
an answer from another corpus would look right and cite the wrong sources. When there is a server that
cannot be used, ``Lookup.reason`` says why in one line, for the CLI to print before it answers locally.

Only httpx and the settings are imported here, nothing that loads a model or opens an index: the point
of asking a server is that ``chokepoint ask`` is done in a fraction of a second.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import httpx

from index.settings import Settings

PROBE_TIMEOUT_S = 0.05
"""The TCP connect to the default address: loopback answers in well under a millisecond, refused or not."""
STATUS_TIMEOUT_S = 10.0
"""GET /v1/status sums the data dir's size on disk; a server busy reindexing may take a while."""


def find_server(settings: Settings) -> Lookup:
    """The server ``settings.server_url`` names, else one at ``api_host:api_port``, if it serves our index.

    With no ``server_url`` and nothing listening at the default address there is nothing to report:
    the reason is empty and the CLI answers locally without a word, as it always did.
    """
    if settings.server_url:
        base = settings.server_url.strip().rstrip("/").removesuffix("/v1")
    else:
        host = _reachable_host(settings.api_host)
        if not _listening(host, settings.api_port):
            return Lookup(None, "")
        base = f"http://{f'[{host}]' if ':' in host else host}:{settings.api_port}"
    token = settings.api_token.get_secret_value() if settings.api_token else None
    client = httpx.Client(base_url=f"{base}/v1", headers={"Authorization": f"Bearer {token}"} if token else None)
    reason = _refusal(client, base, settings, token is not None)
    if reason:
        client.close()
        return Lookup(None, reason)
    return Lookup(RemoteServer(base, client, answer_timeout_s=2 * settings.llm_timeout_s + 60), "")


def _reachable_host(host: str) -> str:
    # A server listening on every interface is reached through loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _refusal(client: httpx.Client, base: str, settings: Settings, sent_token: bool) -> str:
    """Why the server at ``base`` cannot answer for ``settings``' index; empty when it can."""
    try:
        response = client.get("/status", timeout=STATUS_TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"no server answers at {base} ({_one_line(exc)}); unset CHOKEPOINT_SERVER_URL or start chokepoint serve"
    if response.status_code == 401:
        sent = "a different API token from the server's" if sent_token else "no API token"
        return f"the server at {base} needs its API token and this shell sent {sent}: set CHOKEPOINT_API_TOKEN"
    if response.status_code != 200:
        return f"the server at {base} answered GET /v1/status with HTTP {response.status_code}: is it chokepoint serve?"
    try:
        status = response.json()
    except ValueError:
        status = None
    if not isinstance(status, dict) or "collection" not in status or "data_dir" not in status:
        return (f"the server at {base} does not say which data dir and collection it serves "
                "(an older chokepoint serve?): restart it")
    data_dir = str(settings.data_dir.resolve())
    if status["data_dir"] != data_dir:
        return f"the server at {base} serves {status['data_dir']}, not {data_dir}"
    if status["collection"] != settings.collection:
        return f"the server at {base} serves the collection {status['collection']!r}, not {settings.collection!r}"
    store = settings.chroma_url or "embedded"
    if status.get("store") != store:
        return f"the server at {base} reads its index from {status.get('store')}, not {store}"
    return ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class RemoteServer:
    """A server that serves our index; close it (or use ``with``) when done."""

    def __init__(self, base: str, client: httpx.Client, *, answer_timeout_s: float) -> None:
        self.base = base
        self._client = client
        self._answer_timeout_s = answer_timeout_s

    def __enter__(self) -> RemoteServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def ask(self, question: str, answerer: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The answer as ``Answer.as_dict()`` gives it, from ``POST /v1/chat/completions``.

        ``fields`` are the API's extra body fields (``k`` and the filters). Raises ``ServerUnavailable``
        when the server cannot be reached (the CLI then answers locally), ``ServerError`` when it refused
        the question: the same question would fail locally too.
        """
        body = {"model": f"chokepoint-{answerer}", "messages": [{"role": "user", "content": question}],
                "include_answer": True, **fields}
        timeout = httpx.Timeout(self._answer_timeout_s, connect=2.0)
        try:
            response = self._client.post("/chat/completions", json=body, timeout=timeout)
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"the server at {self.base} did not answer ({_one_line(exc)})") from exc
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if response.status_code != 200:
            error = reply.get("error") if isinstance(reply, dict) else None
            message = error.get("message") if isinstance(error, dict) else response.text[:300]
            raise ServerError(f"the server at {self.base} refused the question (HTTP {response.status_code}): "
                              f"{message}")
        answer = reply.get("answer") if isinstance(reply, dict) else None
        if not isinstance(answer, dict):
            raise ServerUnavailable(f"the server at {self.base} sent no 'answer' in its reply (an older chokepoint "
                                    "serve?): restart it")
        return answer


class ServerUnavailable(Exception):
    """The server could not give an answer; the question can still be answered locally."""


class ServerError(ValueError):
    """The server refused the question (a bad -k, a failed LLM), as the local pipeline would have."""


@dataclass(frozen=True)
class Lookup:
    """What ``find_server`` found: a server to ask, or none and why (empty: no server at all)."""

    server: RemoteServer | None
    reason: str
