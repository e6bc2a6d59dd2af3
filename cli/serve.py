"""``chokepoint serve``: the HTTP API for one engine; ``chokepoint mcp``: the MCP server over stdio.

Each imports the server it runs (and the engine: torch, chromadb) inside itself, so that the other commands
never load uvicorn, FastAPI or the optional mcp package.
"""

from __future__ import annotations

import argparse
import sys

from cli.options import settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve`` and ``mcp`` to the ``chokepoint`` parser."""
    p = subparsers.add_parser("serve", help="an OpenAI-compatible API with citations (default 127.0.0.1:8600)")
    p.add_argument("--host", help="address to listen on (default CHOKEPOINT_API_HOST, loopback)")
    p.add_argument("--port", type=int, help="port (default CHOKEPOINT_API_PORT, 8600)")
    subparsers.add_parser("mcp", help="an MCP server over stdio, for agent tools that launch it (tools search, ask)")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # the server's own imports: see the module docstring

    from assistant.engine import Engine
    from service.api import create_app, is_loopback

    settings = settings_from_args(args)
    host = args.host or settings.api_host
    port = args.port if args.port is not None else settings.api_port
    if not is_loopback(host) and settings.api_token is None:
        # Reachable from other machines with nothing to check: say so, since the sources become readable to them.
        print(f"chokepoint: warning: listening on {host} without CHOKEPOINT_API_TOKEN: anyone who can reach "
              "this port can read the indexed sources.", file=sys.stderr)
    engine = Engine(settings)
    # Seconds that the first client (a `chokepoint ask` that found this server) would otherwise wait, and
    # that the server exists to save it.
    engine.warm()
    print(f"Chokepoint API on http://{host}:{port}/v1 (models: chokepoint, chokepoint-extractive, chokepoint-llm); "
          f"MCP on http://{host}:{port}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(create_app(engine, host=host), host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from assistant.engine import Engine  # torch and chromadb: see the module docstring

    try:
        from service.mcp_server import create_server  # mcp is an optional dependency (the [mcp] extra)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("mcp", "mcp_types"):
            raise
        raise ModuleNotFoundError("chokepoint mcp needs the mcp package: pip install -e '.[mcp]' "
                                  "(make install includes it).", name=exc.name) from exc
    # Loaded before serving, so a bad data dir is one line on stderr and an exit code, not a broken session.
    engine = Engine(settings_from_args(args))
    create_server(engine).run("stdio")
    return 0
