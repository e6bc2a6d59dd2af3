"""Metric deltas between two result folders, and the quality gate's floors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from evals.metrics import NOT_APPLICABLE

THRESHOLDS = Path(__file__).resolve().parent / "thresholds.toml"
"""The quality gate's floors, per set and answerer."""
LOWER_IS_BETTER_PREFIX = "latency "
NOT_MEASURED = "–"
"""A metric the run's summary does not hold at all (a run made before the metric existed)."""


def flat_metrics(run: dict[str, Any]) -> dict[str, float | None]:
    """One run's numbers by name: its metrics (``None`` where no case applied), then latency p50/p95 per
    stage (seconds)."""
    out = {k: None if v is None else float(v) for k, v in run.get("metrics", {}).items()}
    for stage, stats in run.get("latency", {}).items():
        for q in ("p50", "p95"):
            if stats.get(q) is not None:
                out[f"{LOWER_IS_BETTER_PREFIX}{stage.removesuffix('_s')} {q}"] = float(stats[q])
    return out


def pair_runs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str]]:
    """Runs to compare: those with the same name; else, when each folder holds one run, those two."""
    common = [name for name in a["runs"] if name in b["runs"]]
    if common:
        return [(n, n) for n in common]
    if len(a["runs"]) == 1 and len(b["runs"]) == 1:
        return [(next(iter(a["runs"])), next(iter(b["runs"])))]
    return []


def _value(name: str, value: float | None, present: bool = True) -> str:
    if not present:
        return NOT_MEASURED
    if value is None:
        return NOT_APPLICABLE
    if name.startswith(LOWER_IS_BETTER_PREFIX):
        return f"{value * 1000:.0f} ms"
    return f"{value:.3f}"


def _delta(name: str, a: float | None, b: float | None) -> tuple[str, str]:
    if a is None or b is None:
        return "", ""
    diff = b - a
    lower_better = name.startswith(LOWER_IS_BETTER_PREFIX)
    text = f"{diff * 1000:+.0f} ms" if lower_better else f"{diff:+.3f}"
    tolerance = 0.05 * abs(a) if lower_better else 0.0005  # latency: within 5% is noise
    if abs(diff) <= tolerance:
        return text, "="
    better = diff < 0 if lower_better else diff > 0
    return text, "better" if better else "WORSE"


def compare_summaries(a: dict[str, Any], b: dict[str, Any], label_a: str = "A", label_b: str = "B") -> str:
    """A plain-text table of every metric of A and B with B - A (and which way is better)."""
    pairs = pair_runs(a, b)
    lines = [f"A = {label_a} ({a.get('kind', 'qa')}, {a.get('cases', '?')} cases, {a.get('set', '')})",
             f"B = {label_b} ({b.get('kind', 'qa')}, {b.get('cases', '?')} cases, {b.get('set', '')})"]
    if a.get("set") != b.get("set") or a.get("cases") != b.get("cases"):
        lines.append("warning: the two folders were run on different sets or case counts")
    if not pairs:
        lines.append(f"No runs to compare: A has {sorted(a['runs'])}, B has {sorted(b['runs'])}.")
        return "\n".join(lines) + "\n"
    for run_a, run_b in pairs:
        fa, fb = flat_metrics(a["runs"][run_a]), flat_metrics(b["runs"][run_b])
        names = list(dict.fromkeys([*fa, *fb]))
        width = max(len(n) for n in names) if names else 10
        title = run_a if run_a == run_b else f"{run_a} -> {run_b}"
        lines += ["", f"[{title}]", f"{'metric':<{width}}  {'A':>10}  {'B':>10}  {'B - A':>10}"]
        for name in names:
            va, vb = fa.get(name), fb.get(name)
            delta, verdict = _delta(name, va, vb)
            shown_a, shown_b = _value(name, va, name in fa), _value(name, vb, name in fb)
            lines.append(f"{name:<{width}}  {shown_a:>10}  {shown_b:>10}  {delta:>10}  {verdict}".rstrip())
    return "\n".join(lines) + "\n"


def compare_folders(a: Path, b: Path) -> str:
    summaries = []
    for folder in (a, b):
        path = Path(folder) / "summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: no summary.json (is it an eval output folder?)")
        summaries.append(json.loads(path.read_text()))
    return compare_summaries(summaries[0], summaries[1], str(a), str(b))


# Quality gate ----------------------------------------------------------------------------------


def load_thresholds(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``{set: {answerer: {metric: floor}}}`` from a TOML file with one table per set and answerer
    (``[default.extractive]``, ``[hotpotqa-dev.extractive]``)."""
    data = tomllib.loads(Path(path).read_text())
    floors: dict[str, dict[str, dict[str, float]]] = {}
    for set_name, runs in data.items():
        if not isinstance(runs, dict) or not all(isinstance(t, dict) for t in runs.values()):
            raise ValueError(f"{path}: table [{set_name}] must hold one table per answerer, "
                             f"as [{set_name}.extractive]")
        floors[set_name] = {run: {k: float(v) for k, v in table.items()} for run, table in runs.items()}
    return floors


def set_name(set_path: str) -> str:
    """The name a set's floors are filed under: the file's stem, or its folder's name for a
    ``set.jsonl`` (the public dev sets are ``<name>/set.jsonl``)."""
    path = Path(set_path)
    return path.parent.name if path.stem == "set" else path.stem


def check_thresholds(summary: dict[str, Any], floors: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """One line per metric below its floor, for the set and the runs the summary holds; empty when all
    pass (or when the file has no floors for this set).

    A floor that cannot be checked fails too, with its reason: the metric is n/a for this set (no
    case it applies to), or the summary does not hold it at all. Passing it would hide that the
    metric stopped being measured."""
    name = summary.get("name") or set_name(str(summary.get("set", "")))
    failures = []
    for run, table in floors.get(name, {}).items():
        if run not in summary.get("runs", {}):
            continue
        metrics = summary["runs"][run]["metrics"]
        for metric, floor in table.items():
            value = metrics.get(metric)
            if metric not in metrics:
                failures.append(f"{name}.{run}: {metric} was not measured (floor {floor:.3f}): the run's summary has "
                                f"no such metric; check the name in [{name}.{run}] of the thresholds file, or rerun "
                                "the set with the current code")
            elif value is None:
                failures.append(f"{name}.{run}: {metric} is n/a, no case of this set has what it needs (floor "
                                f"{floor:.3f}): remove the floor from [{name}.{run}] of the thresholds file, or "
                                "add cases it applies to")
            elif value < floor:
                failures.append(f"{name}.{run}: {metric} {value:.3f} is below its floor {floor:.3f}")
    return failures
