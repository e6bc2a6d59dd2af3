"""``chokepoint serve``: the HTTP API for one engine (``assistant.cli`` maps "serve" to ``cmd_serve``)."""

from __future__ import annotations

import argparse
import ipaddress
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="an OpenAI-compatible API with citations (default 127.0.0.1:8600)")
    p.add_argument("--host", help="address to listen on (default CHOKEPOINT_API_HOST, loopback)")
    p.add_argument("--port", type=int, help="port (default CHOKEPOINT_API_PORT, 8600)")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from assistant.cli import settings_from_args
    from assistant.engine import Engine
    from service.api import create_app

    settings = settings_from_args(args)
    host = args.host or settings.api_host
    port = args.port if args.port is not None else settings.api_port
    if not _is_loopback(host) and settings.api_token is None:
        # Reachable from other machines with nothing to check: say so, since the sources become readable to them.
        print(f"chokepoint: warning: listening on {host} without CHOKEPOINT_API_TOKEN: anyone who can reach "
              "this port can read the indexed sources.", file=sys.stderr)
    engine = Engine(settings)
    print(f"Chokepoint API on http://{host}:{port}/v1 (models: chokepoint, chokepoint-extractive, chokepoint-llm)",
          file=sys.stderr, flush=True)
    uvicorn.run(create_app(engine), host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
