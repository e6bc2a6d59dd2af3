"""``chokepoint eval``: run a test set or a BEIR set, or compare two result folders.

    chokepoint eval [--set PATH | --beir DIR] [--answerer extractive|llm] [--out DIR] [--limit N]
    chokepoint eval --compare A B

The runners import the engine, the models and the store (torch, chromadb) inside the command that runs them:
``--compare`` and ``--help`` need none of it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cli.options import settings_from_args
from evals import DEFAULT_SET
from evals.compare import THRESHOLDS, check_thresholds, compare_folders, load_thresholds
from evals.metrics import MODES
from evals.report import fmt, ms

EXIT_BELOW_FLOOR = 1
EXIT_BAD_SET = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``chokepoint`` parser."""
    p = subparsers.add_parser("eval", help="score retrieval, answers and citations on a test set",
                              description=__doc__.splitlines()[0])
    what = p.add_mutually_exclusive_group()
    what.add_argument("--set", help=f"JSONL test set (default: {DEFAULT_SET.relative_to(DEFAULT_SET.parents[2])})")
    what.add_argument("--beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv): retrieval only")
    what.add_argument("--compare", nargs=2, metavar=("A", "B"), help="print metric deltas between two result folders")
    p.add_argument("--answerer", action="append",
                   help="extractive or llm; repeat (or comma-separate) to run several (default: extractive)")
    p.add_argument("--out", help="output folder (default: evals/out/<set>-<answerers>)")
    p.add_argument("--limit", type=int, help="only the first N cases (queries)")
    p.add_argument("--judge", choices=("alignment", "llm"), default="alignment",
                   help="support judge for citations and faithfulness: alignment (default, lexical: figures, "
                        "names and negations must match) or the local/configured LLM (a note on a sample, "
                        "not for the gate: it is the answerer's own model)")
    p.add_argument("--thresholds", nargs="?", const=str(THRESHOLDS), default=None,
                   help="exit 1 when a metric is below its floor in this TOML (default file when no path is given)")
    p.add_argument("--modes", default="hybrid,dense,lexical", help="BEIR: retrieval modes to score")
    p.add_argument("--beir-cache", help="BEIR: where to keep the built index (default: <data dir>/beir/<name>)")
    p.add_argument("--rebuild-beir", action="store_true", help="BEIR: rebuild the cached index")


def _answerers(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for value in (args.answerer or ["extractive"]) for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in ("extractive", "llm")]
    if bad:
        raise ValueError(f"unknown answerer {bad[0]!r}: use 'extractive' or 'llm'")
    return list(dict.fromkeys(names))


class _Bar:
    """A rich progress bar on stderr, one task per label."""

    def __init__(self) -> None:
        # rich: only a run draws a bar, not --compare
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=self.console)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> _Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, label: str, done: int, total: int) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], completed=done, total=total)


def _print_table(summary: dict, names: list[str]) -> None:
    runs = summary["runs"]
    metrics = list(dict.fromkeys(k for r in runs.values() for k in r["metrics"]))
    width = max(len(k) for k in metrics)
    print(f"{'metric':<{width}}  " + "  ".join(f"{n:>10}" for n in names))
    for metric in metrics:
        print(f"{metric:<{width}}  " + "  ".join(f"{fmt(runs[n]['metrics'].get(metric)):>10}" for n in names))
    stage = "total_s" if summary.get("kind") == "qa" else "retrieval_s"
    for q in ("p50", "p95"):
        label = f"{stage.removesuffix('_s')} {q}"
        print(f"{label:<{width}}  " + "  ".join(f"{ms(runs[n]['latency'][stage][q]):>10}" for n in names))


def cmd_eval(args: argparse.Namespace) -> int:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if args.compare:
        print(compare_folders(Path(args.compare[0]), Path(args.compare[1])), end="")
        return 0
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.beir:
        return _run_beir(args)
    return _run_set(args)


def _gate(args: argparse.Namespace, summary: dict) -> int:
    if not args.thresholds:
        return 0
    failures = check_thresholds(summary, load_thresholds(Path(args.thresholds)))
    for line in failures:
        print(f"FLOOR NOT MET {line}", file=sys.stderr)  # not "below": a floor on an n/a metric fails too
    if not failures:
        print(f"All floors in {args.thresholds} met.")
    return EXIT_BELOW_FLOOR if failures else 0


def _run_set(args: argparse.Namespace) -> int:
    # Inside the runs: the cases' models (pydantic), the engine (torch, chromadb) and the judge load for a run only.
    from evals.cases import CaseFileError, load_cases, missing_sources

    set_path = Path(args.set) if args.set else DEFAULT_SET
    names = _answerers(args)
    try:
        cases = load_cases(set_path)
    except CaseFileError as exc:
        for line in exc.problems:
            print(f"chokepoint eval: {line}", file=sys.stderr)
        return EXIT_BAD_SET
    if args.limit:
        cases = cases[: args.limit]
    settings = settings_from_args(args)
    absent = missing_sources(cases, settings.sources_dir)
    if absent:
        first = next(iter(absent.items()))
        print(f"warning: {len(absent)} cases name gold or related sources missing from {settings.sources_dir} "
              f"(first: {first[0]}: {', '.join(first[1])})", file=sys.stderr)

    from assistant.engine import Engine
    from evals.alignment_judge import AlignmentJudge
    from evals.judge import Judge
    from evals.llm_judge import LLMJudge
    from evals.runner import run_set

    engine = Engine(settings)
    if engine.store.count() == 0:
        raise RuntimeError("The index is empty. Run `chokepoint index` first.")
    judge: Judge = AlignmentJudge()
    if args.judge == "llm":
        from assistant.engine import chat_model

        judge = LLMJudge(chat_model(settings))
    out = Path(args.out) if args.out else Path("evals/out") / f"{set_path.stem}-{'-'.join(names)}"
    with _Bar() as bar:
        summary = run_set(engine, cases, names, out, set_path=str(set_path), judge=judge, progress=bar)
    _print_table(summary, names)
    errors = sum(r["errors"] for r in summary["runs"].values())
    if errors:
        print(f"warning: {errors} cases raised an error (see `error` in results.jsonl)", file=sys.stderr)
    print(f"{len(cases)} cases x {len(names)} answerer(s) in {summary['wall_s']:.0f} s; "
          f"wrote {out}/results.jsonl, summary.json, report.md")
    return _gate(args, summary)


def _run_beir(args: argparse.Namespace) -> int:
    from evals.beir import run_beir  # the store (chromadb) and the model (torch): see _run_set
    from evals.cases import CaseFileError, load_beir
    from index.remote_embedding import make_embedder

    try:
        beir = load_beir(Path(args.beir))
    except CaseFileError as exc:
        for line in exc.problems:
            print(f"chokepoint eval: {line}", file=sys.stderr)
        return EXIT_BAD_SET
    modes = [x.strip() for x in args.modes.split(",") if x.strip()]
    unknown = [x for x in modes if x not in MODES]
    if unknown:
        raise ValueError(f"unknown retrieval mode {unknown[0]!r}: use {', '.join(MODES)}")
    settings = settings_from_args(args)
    embedder = make_embedder(settings)
    out = Path(args.out) if args.out else Path("evals/out") / f"beir-{beir.name}"
    with _Bar() as bar:
        summary = run_beir(beir, settings, embedder, out, modes=modes, limit=args.limit,
                           cache_dir=Path(args.beir_cache) if args.beir_cache else None, progress=bar,
                           rebuild=args.rebuild_beir)
    _print_table(summary, modes)
    index = summary["index"]
    built = "cached index" if index["cached"] else f"index built in {index['build_s']:.0f} s"
    print(f"{summary['cases']} queries, {index['documents']} documents, {index['chunks']} chunks ({built}) "
          f"in {summary['wall_s']:.0f} s; wrote {out}/results.jsonl, summary.json, report.md")
    return _gate(args, summary)
