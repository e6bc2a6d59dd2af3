"""The commands over the index: ``index``, ``status``, ``search``, ``ask`` and ``chat``.

Each imports what it runs on (the engine, the models, the store, rich) inside itself: importing this module
costs nothing, and ``ask`` through a running server never loads torch or chromadb (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cli.options import settings_from_args

if TYPE_CHECKING:
    from rich.console import Console

    from assistant.answer import Answer
    from assistant.answerers import Answerer
    from assistant.engine import Engine
    from index.filters import Filters
    from index.settings import Settings

EXIT_FILES_FAILED = 3


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``index``, ``status``, ``search``, ``ask`` and ``chat`` to the ``chokepoint`` parser."""
    p = sub.add_parser("index", help="index the sources dir (or the given files/folders)")
    p.add_argument("paths", nargs="*", help="files or folders (default: the sources dir)")
    p.add_argument("--rebuild", action="store_true", help="drop the index and build it again")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("status", help="what is in the index")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("search", help="the passages that best match a query")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=None, help="number of passages")
    p.add_argument("--json", action="store_true")
    _add_filter_args(p)

    for name, help_text in (("ask", "answer a question with cited sources"),
                            ("chat", "a terminal conversation with follow-ups")):
        p = sub.add_parser(name, help=help_text)
        if name == "ask":
            p.add_argument("question")
            p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
            p.add_argument("--local", action="store_true",
                           help="answer in this process, even when a chokepoint serve over the same index is up")
        p.add_argument("--answerer", choices=["extractive", "llm"], default=None)
        p.add_argument("-k", type=int, default=None, help="number of passages")
        _add_filter_args(p)


def _console() -> Console:
    from rich.console import Console  # rich: only the index command draws

    return Console(stderr=True, highlight=False)


def cmd_index(args: argparse.Namespace) -> int:
    # Inside each command: the model (torch), the store (chromadb) and rich load for the command that uses them.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from index.indexer import Indexer
    from index.remote_embedding import make_embedder

    settings = settings_from_args(args)
    console = _console()
    embedder = make_embedder(settings)
    paths = [Path(p) for p in args.paths] or None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            label = {"scan": "Checking files", "files": "Reading files", "chunks": "Chunks embedded"}[stage]
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = Indexer(settings, embedder).run(paths, rebuild=args.rebuild, progress=progress)
    out = sys.stdout
    if args.json:
        json.dump(report.as_dict(), out, indent=2)
        out.write("\n")
    else:
        print(f"Indexed: {report.summary()}", file=out)
        if report.skipped:
            print(f"Skipped {len(report.skipped)} unsupported files: {', '.join(report.skipped[:10])}"
                  + (" ..." if len(report.skipped) > 10 else ""), file=out)
        for link in report.links:
            print(f"Link not followed: {link.describe()}", file=out)
        for failure in report.failed:
            print(f"FAILED {failure.reason}", file=out)
    return 0 if report.ok else EXIT_FILES_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from assistant.engine import Engine  # torch and chromadb: see cmd_index

    status = Engine(settings_from_args(args)).status()
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        print(f"Sources:         {status.sources}")
        print(f"Chunks:          {status.chunks}")
        print(f"Embedding model: {status.embedding_model} ({status.dimension} dims)")
        print(f"Chunker:         {status.chunker}")
        print(f"Last indexed:    {status.last_indexed or 'never'}")
        print(f"Index on disk:   {status.size_bytes / 1e6:.1f} MB in {status.data_dir}")
        print(f"Store:           {status.store}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.engine import Engine  # torch and chromadb: see cmd_index

    engine = Engine(settings_from_args(args))
    if args.k is not None and not 1 <= args.k <= engine.settings.max_passages:
        raise ValueError(f"-k {args.k}: between 1 and {engine.settings.max_passages} passages are allowed "
                         "(CHOKEPOINT_MAX_PASSAGES).")
    result = engine.retriever.retrieve(args.query, k=args.k, filters=_filters(args))
    if args.json:
        print(json.dumps({"query": args.query, "seconds": round(result.seconds, 4), "passages": [
            {"rank": n, "score": round(p.score, 5), "relevance": round(p.relevance, 4), "id": p.id,
             "source": p.chunk.source, "title": p.chunk.title, "heading": p.chunk.heading,
             "page": p.chunk.page, "start": p.chunk.start, "end": p.chunk.end, "url": p.chunk.url,
             "text": p.chunk.text}
            for n, p in enumerate(result.passages, start=1)]}, indent=2))
        return 0
    if not result.passages:
        print("No passages found. Is the index empty? Run `chokepoint index`.")
    for n, p in enumerate(result.passages, start=1):
        where = p.chunk.source + (f", page {p.chunk.page}" if p.chunk.page else "")
        print(f"[{n}] {p.score:.4f} (cos {p.relevance:.2f})  {p.chunk.title}  — {where} "
              f"chars {p.chunk.start}-{p.chunk.end}")
        text = " ".join(p.chunk.text.split())
        print(f"    {text[:300]}{'...' if len(text) > 300 else ''}\n")
    return 0


def _print_answer(answer: dict, out: TextIO = sys.stdout) -> None:
    """The answer and its sources, from ``Answer.as_dict()``: a server's answer comes as that dict."""
    print(answer["answer"], file=out)
    if answer["refused"]:
        print(f"\n(refused: {answer['refusal_reason']})", file=out)
        if answer["passages"]:
            print("Nearest passages:", file=out)
            for p in answer["passages"][:3]:
                print(f"  - {p['title']} — {p['source']} (similarity {p['relevance']:.2f})", file=out)
        return
    if answer["dropped"]:
        print(f"\n({len(answer['dropped'])} unsupported sentence(s) dropped)", file=out)
    print("\nSources:", file=out)
    for c in answer["citations"]:
        page = f", page {c['page']}" if c["page"] else ""
        print(f"  [{c['n']}] {c['title']} — {c['source']}{page}, chars {c['support_start']}-{c['support_end']}",
              file=out)
        # The reports the quoted block cites, not the note's first source: a figure keeps its outlet.
        for r in c["reports"]:
            said = ", ".join(b for b in (r["publisher"], r["date"]) if b)
            print(f"      {said}" + (f" <{r['url']}>" if r["url"] else ""), file=out)
        print(f"      \"{' '.join(c['supporting_text'].split())}\"", file=out)


def _run_question(engine: Engine, answerer: Answerer, question: str, history: list,
                  args: argparse.Namespace) -> Answer:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from assistant.answer import Answer  # the retriever's imports (chromadb): see cmd_index
    from assistant.pipeline import AskOptions, Preview, Token

    options = AskOptions(k=args.k, filters=_filters(args))
    answer = None
    # A terminal watches the quick answer and the draft in one live area that the final answer replaces
    # (transient: it is cleared, so the answer is read once). Piped output gets the final answer only.
    live = Live(console=Console(stderr=True), transient=True, auto_refresh=False) \
        if sys.stderr.isatty() and not args.json else None
    draft = ""
    with live if live is not None else contextlib.nullcontext():
        for event in engine.pipeline.stream(answerer, question, history, options):
            if isinstance(event, Preview) and live is not None:
                # A CPU user reads the extractive answer while the LLM writes the one that replaces it.
                live.update(Text(f"(quick answer) {event.answer.text}"), refresh=True)
            elif isinstance(event, Token) and live is not None:
                draft += event.text
                live.update(Text(f"(draft) {draft}"), refresh=True)
            elif isinstance(event, Answer):
                answer = event
    return answer


def cmd_ask(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    answer = None if args.local else _ask_server(settings, args)
    via = "server"
    if answer is None:
        from assistant.engine import Engine  # only now: a server that answered spared loading torch and chromadb

        engine = Engine(settings)
        answer = _run_question(engine, engine.answerer(args.answerer), args.question, [], args).as_dict()
        via = "local"
    if args.json:
        print(json.dumps({**answer, "via": via}, indent=2))
    else:
        _print_answer(answer)
    return 0


def _ask_server(settings: Settings, args: argparse.Namespace) -> dict | None:
    """The answer from a running ``chokepoint serve`` over the same index; None (and why, on stderr) if none.

    Loading the model and opening the index take seconds; a server has them loaded already.
    """
    from service.client import ServerUnavailable, find_server  # httpx: not for --local

    lookup = find_server(settings)
    if lookup.server is None:
        if lookup.reason:
            print(f"chokepoint: answering locally: {lookup.reason}", file=sys.stderr)
        return None
    with lookup.server as server:
        try:
            return server.ask(args.question, args.answerer or settings.answerer, _filter_fields(args))
        except ServerUnavailable as exc:
            print(f"chokepoint: answering locally: {exc}", file=sys.stderr)
            return None


def cmd_chat(args: argparse.Namespace) -> int:
    from assistant.answer import Turn  # torch and chromadb: see cmd_index
    from assistant.engine import Engine

    engine = Engine(settings_from_args(args))
    answerer = engine.answerer(args.answerer)
    history: list[Turn] = []
    args.json = False
    print("Chokepoint chat — ask a question; an empty line or Ctrl-D quits.", file=sys.stderr)
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            return 0
        if not question:
            return 0
        try:
            answer = _run_question(engine, answerer, question, history, args)
        except ValueError as exc:
            print(f"chokepoint: {exc}", file=sys.stderr)
            continue
        _print_answer(answer.as_dict())
        history += [Turn("user", question), Turn("assistant", answer.text)]


def _filters(args: argparse.Namespace) -> Filters:
    from index.filters import Filters  # importing cli.ask stays free: see the module docstring

    return Filters(
        sources=tuple(getattr(args, "source", None) or ()),
        publishers=tuple(getattr(args, "publisher", None) or ()),
        topics=tuple(getattr(args, "topic", None) or ()),
        date_from=getattr(args, "date_from", None) or "",
        date_to=getattr(args, "date_to", None) or "",
    )


def _filter_fields(args: argparse.Namespace) -> dict:
    """``-k`` and the filters as the API's extra body fields."""
    fields = {"k": args.k, "source": args.source, "publisher": args.publisher, "topic": args.topic,
              "date_from": args.date_from, "date_to": args.date_to}
    return {name: value for name, value in fields.items() if value is not None}


def _add_filter_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", help="only this source file (repeatable)")
    parser.add_argument("--publisher", action="append", help="only this publisher (repeatable)")
    parser.add_argument("--topic", action="append", help="only this topic (repeatable)")
    parser.add_argument("--date-from", help="earliest date, YYYY[-MM[-DD]]")
    parser.add_argument("--date-to", help="latest date, YYYY[-MM[-DD]]")
