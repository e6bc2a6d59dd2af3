"""The ``chokepoint`` command line: index, status, search, ask, chat, eval, serve, mcp.

Errors print one line (add ``--debug`` for the traceback) and exit non-zero:
1 for an error, 2 for bad usage, 3 when indexing finished but some files failed.

The top of the import graph: this package imports assistant/, index/, evals/ and service/, and nothing
outside it imports it. The commands import the engine, the models and the store inside themselves, so
that ``--help``, a usage error or an ``ask`` answered by a running server never loads torch or chromadb.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from cli.ask import cmd_ask, cmd_chat, cmd_index, cmd_search, cmd_status
from cli.ask import register as register_ask
from cli.evals import cmd_eval
from cli.evals import register as register_eval
from cli.options import settings_from_args
from cli.serve import cmd_mcp, cmd_serve
from cli.serve import register as register_serve

EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own exit status for bad usage

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "index": cmd_index,
    "status": cmd_status,
    "search": cmd_search,
    "ask": cmd_ask,
    "chat": cmd_chat,
    "eval": cmd_eval,
    "serve": cmd_serve,
    "mcp": cmd_mcp,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chokepoint", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--data-dir", help="override CHOKEPOINT_DATA_DIR")
    parser.add_argument("--sources-dir", help="override CHOKEPOINT_SOURCES_DIR")
    sub = parser.add_subparsers(dest="command", required=True)
    # In COMMANDS' order, which is the order `chokepoint --help` lists them in.
    register_ask(sub)
    register_eval(sub)
    register_serve(sub)
    return parser


def _explain(exc: Exception, args: argparse.Namespace) -> str:
    """The fault as one line that names the path or setting and the fix."""
    # Here, not at the top: it imports the settings (pydantic-settings), needed only once something failed.
    from assistant.llm.faults import describe

    try:
        return describe(exc, settings_from_args(args))
    except Exception:  # the settings themselves are what failed
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model we use is on disk
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"chokepoint: error: {_explain(exc, args)}", file=sys.stderr)
        return EXIT_ERROR
