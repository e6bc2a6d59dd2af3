"""report.md and its plots (matplotlib, Agg backend, PNG) for a result folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals import metrics as m
from evals.compare import THRESHOLDS, load_thresholds, set_name
from evals.metrics import (
    BEIR_METRICS,
    EXTRA_METRICS,
    HEADLINE,
    MODE_LABELS,
    NOT_APPLICABLE,
    RETRIEVAL_METRICS,
    STAGES,
    baselines,
)

WORST = 10
TAG_METRICS = ("refusal_accuracy", "answered_and_right", "hit@5", "key_fact_recall", "token_f1", "citation_precision",
               "faithfulness", "answer_passage_hit")
SLICE_TAGS = ("paraphrase", "near-miss")
"""Cases reported apart: questions in other words than the notes', and unanswerable near misses."""
SLICE_METRICS = ("refusal_accuracy", "answered_and_right", "hit@1", "hit@5", "mrr", "answer_passage_hit",
                 "key_fact_recall", "citation_precision", "faithfulness")


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in (text.strip() or "(empty)").splitlines())


def _plt():
    # Here, not at the top: matplotlib takes about half a second to import, and only the plots need it
    # (the CLI imports this module for ``fmt`` and ``ms``).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Plots -----------------------------------------------------------------------------------------


def plot_metric_bars(runs: dict[str, dict[str, Any]], names: Sequence[str], path: Path, title: str) -> None:
    """Grouped bars: one group per metric, one bar per run (answerer or retrieval mode); a metric with
    no cases gets no bar, only "n/a"."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 2), 4.2))
    width = 0.8 / max(1, len(runs))
    for i, (run, data) in enumerate(runs.items()):
        values = [data["metrics"].get(n) for n in names]
        xs = [x + (i - (len(runs) - 1) / 2) * width for x in range(len(names))]
        bars = ax.bar(xs, [0.0 if v is None else v for v in values], width, label=run)
        for x, bar, value in zip(xs, bars, values, strict=True):
            if value is None:
                bar.set_visible(False)
                ax.text(x, 0.01, NOT_APPLICABLE, ha="center", va="bottom", fontsize=7, color="grey", rotation=90)
            else:
                ax.text(x, value + 0.01, f"{value:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(samples: dict[str, dict[str, list[float]]], path: Path, title: str) -> None:
    """Box plots of seconds per stage, one panel per run."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(samples), figsize=(5.5 * len(samples), 3.8), squeeze=False)
    for ax, (run, stages) in zip(axes[0], samples.items(), strict=True):
        kept = {k: [v * 1000 for v in vals] for k, vals in stages.items() if vals}
        if kept:
            ax.boxplot(list(kept.values()), showfliers=True)
            ax.set_xticks(range(1, len(kept) + 1))
            ax.set_xticklabels([k.removesuffix("_s") for k in kept], rotation=20)
            if max(max(v) for v in kept.values()) > 20 * max(min(v) for v in kept.values() if v) + 1:
                ax.set_yscale("log")
        ax.set_ylabel("milliseconds")
        ax.set_title(run)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tags(by_tag: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Heat map of per-tag scores (rows: tags, columns: metrics)."""
    plt = _plt()
    tags = sorted(by_tag)
    data = [[by_tag[t].get(mn) if by_tag[t].get(mn) is not None else float("nan") for mn in TAG_METRICS]
            for t in tags]
    fig, ax = plt.subplots(figsize=(1.1 * len(TAG_METRICS) + 3, 0.38 * len(tags) + 1.6))
    image = ax.imshow(data, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(TAG_METRICS)))
    ax.set_xticklabels(TAG_METRICS, rotation=30, ha="right")
    ax.set_yticks(range(len(tags)))
    ax.set_yticklabels([f"{t} ({by_tag[t]['cases']})" for t in tags])
    for i, row in enumerate(data):
        for j, value in enumerate(row):
            if value == value:  # not NaN
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
            else:
                ax.text(j, i, NOT_APPLICABLE, ha="center", va="center", fontsize=7, color="grey")
    fig.colorbar(image, ax=ax, fraction=0.03)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Markdown --------------------------------------------------------------------------------------


def write_report(out_dir: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> Path:
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    text = _beir_report(out_dir, summary, rows) if summary.get("kind") == "beir" else _qa_report(out_dir, summary, rows)
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def _judge_agreement_line(summary: dict[str, Any]) -> list[str]:
    """How far to trust the citation and faithfulness figures: the judge against hand labels."""
    agreed = summary.get("judge_agreement")
    if not agreed:
        return []
    wrong = f" (disagrees on {', '.join(agreed['disagreements'])})" if agreed["disagreements"] else ""
    return [f"Judge ({agreed['judge']}) agreement with {agreed['total']} hand labels: "
            f"{agreed['agreed']}/{agreed['total']}{wrong}; labels in `evals/sets/judge_labels.jsonl`."]


def _floors_section(summary: dict[str, Any], path: Path = THRESHOLDS) -> list[str]:
    """Each answerer's floors for this set (the quality gate), beside what this run measured."""
    name = summary.get("name") or set_name(str(summary.get("set", "")))
    floors = load_thresholds(path).get(name, {}) if path.exists() else {}
    lines = [f"## Floors ({path.name}, [{name}.<answerer>])", ""]
    tables = {run: table for run, table in floors.items() if run in summary["runs"]}
    if not tables:
        return [*lines, f"No floors for this set and these answerers in {path.name}.", ""]
    lines += ["| answerer | metric | floor | measured | |", "|---|---|---:|---:|---|"]
    for run, table in tables.items():
        metrics = summary["runs"][run]["metrics"]
        for metric, floor in table.items():
            value = metrics.get(metric)
            verdict = "ok" if value is not None and value >= floor else "**below**"
            lines.append(f"| {run} | {metric} | {floor:.3f} | {fmt(value)} | {verdict} |")
    return [*lines, ""]


def _qa_report(out_dir: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    runs = summary["runs"]
    names = list(runs)
    lines = [
        f"# Evaluation: {Path(summary['set']).name or 'test set'}",
        "",
        f"{summary['cases']} cases, answerer(s): {', '.join(names)}; judge: {summary.get('judge', 'lexical')}; "
        f"{summary['created']}; wall time {summary.get('wall_s', 0):.0f} s.",
        "Metric definitions: `evals/README.md`. Per-case answers and scores: `results.jsonl`. "
        f"{NOT_APPLICABLE}: no case of the set has what the metric needs.",
        *_judge_agreement_line(summary),
        "",
        *[_answered_and_right_line(name, runs[name]) for name in names],
        "",
        "## Headline metrics",
        "",
        "| metric | " + " | ".join(names) + " | cases |",
        "|---|" + "---:|" * len(names) + "---:|",
    ]
    for metric in (*HEADLINE, *EXTRA_METRICS):
        counts = {runs[n]["counts"].get(metric, 0) for n in names}
        lines.append(f"| {metric} | " + " | ".join(fmt(runs[n]["metrics"].get(metric)) for n in names)
                     + f" | {'/'.join(str(c) for c in sorted(counts))} |")
    plot_metric_bars(runs, HEADLINE, out_dir / "plots" / "metrics.png", "Headline metrics per answerer")
    lines += ["", "![metrics](plots/metrics.png)", "", *_floors_section(summary), *_baseline_section(runs),
              *_slice_section(runs, rows), "## Refusals", ""]
    for name in names:
        c = runs[name]["confusion"]
        lines += [
            f"**{name}** (errors: {runs[name]['errors']})", "",
            "| | answered | refused |", "|---|---:|---:|",
            f"| answerable | {c['answered_answerable']} | {c['refused_answerable']} |",
            f"| unanswerable | {c['answered_unanswerable']} | {c['refused_unanswerable']} |", "",
        ]
    lines += ["## Latency", "", "| answerer | stage | p50 | p95 | mean | n |", "|---|---|---:|---:|---:|---:|"]
    samples: dict[str, dict[str, list[float]]] = {}
    for name in names:
        for stage, stats in runs[name]["latency"].items():
            lines.append(f"| {name} | {stage} | {ms(stats['p50'])} | {ms(stats['p95'])} | {ms(stats['mean'])} "
                         f"| {stats['n']} |")
        mine = [r for r in rows if r["answerer"] == name]
        samples[name] = {s: [r["answer"]["timings"].get(s) for r in mine
                             if r["answer"]["timings"].get(s) not in (None, 0.0)] for s in STAGES}
    plot_latency(samples, out_dir / "plots" / "latency.png", "Latency per stage")
    lines += ["", "![latency](plots/latency.png)", "", "## Scores per tag", ""]
    for name in names:
        by_tag = runs[name]["by_tag"]
        lines += [f"**{name}**", "", "| tag | cases | " + " | ".join(TAG_METRICS) + " |",
                  "|---|---:|" + "---:|" * len(TAG_METRICS)]
        for tag, values in sorted(by_tag.items()):
            lines.append(f"| {tag} | {values['cases']} | " + " | ".join(fmt(values.get(k)) for k in TAG_METRICS) + " |")
        plot_tags(by_tag, out_dir / "plots" / f"tags-{name}.png", f"Scores per tag ({name})")
        lines += ["", f"![tags](plots/tags-{name}.png)", ""]
    for name in names:
        mine = sorted((r for r in rows if r["answerer"] == name),
                      key=lambda r: (r["scores"].get("case_score") or 0.0, r["id"]))
        lines += [f"## The {WORST} worst cases ({name})", "",
                  "Ranked by the case score: the mean of refusal accuracy, key-fact recall, token F1, "
                  "citation precision and faithfulness, where they apply.", ""]
        for r in mine[:WORST]:
            lines += _case_block(r)
    return "\n".join(lines) + "\n"


def _baseline_section(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The run's retrieval figures beside BM25 alone and a fixed list of notes: what each figure is worth."""
    out: list[str] = []
    for name, run in runs.items():
        base = run.get("baselines")
        if not base:  # a summary written before the baselines were
            continue
        fixed = base["fixed_list"]
        columns = [(f"{name} run", run["metrics"])]
        if "bm25" in base:
            columns.append(("BM25 alone", base["bm25"]["metrics"]))
        columns.append((f"fixed list of {len(fixed['sources'])}", fixed["metrics"]))
        out += [f"## Retrieval baselines ({name})", "",
                "The same answerable cases ranked by BM25 alone on the same standalone queries, and by one fixed "
                "list of the set's most common gold notes offered to every question ("
                + ", ".join(f"`{s}`" for s in fixed["sources"]) + "). A figure that a baseline comes close to "
                "says little about the retriever.", "",
                "| metric | " + " | ".join(label for label, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
        out += [f"| {metric} | " + " | ".join(fmt(values.get(metric)) for _, values in columns) + " |"
                for metric in RETRIEVAL_METRICS]
        out.append("")
    return out


def _slice_section(runs: dict[str, dict[str, Any]], rows: Sequence[dict[str, Any]]) -> list[str]:
    """The paraphrased and near-miss cases apart from the rest, per answerer (nothing when the set has neither)."""
    if not any(t in SLICE_TAGS for r in rows for t in r["tags"]):
        return []
    out = ["## Slices: paraphrased questions and near misses", "",
           "`paraphrase`: answerable questions worded as a reader would, not as the notes are. `near-miss`: "
           "unanswerable questions about an entity the notes cover, asking for a fact they do not give (right: "
           "a refusal). `other`: every other case. BM25 hit@1 is the baseline's, on the same queries.", ""]
    for name, run in runs.items():
        mine = [r for r in rows if r["answerer"] == name]
        groups = [(tag, [r for r in mine if tag in r["tags"]]) for tag in SLICE_TAGS]
        groups.append(("other", [r for r in mine if not set(r["tags"]) & set(SLICE_TAGS)]))
        fixed = run.get("baselines", {}).get("fixed_list", {}).get("sources")
        out += [f"**{name}**", "", "| slice | cases | " + " | ".join(SLICE_METRICS) + " | BM25 hit@1 |",
                "|---|---:|" + "---:|" * (len(SLICE_METRICS) + 1)]
        for label, group in groups:
            if not group:
                continue
            bm25 = baselines(group, fixed).get("bm25", {}).get("metrics", {}).get("hit@1")
            values = [m.mean(r["scores"].get(k) for r in group) for k in SLICE_METRICS]
            out.append(f"| {label} | {len(group)} | " + " | ".join(fmt(v) for v in values) + f" | {fmt(bm25)} |")
        out.append("")
    return out


def _answered_and_right_line(name: str, run: dict[str, Any]) -> str:
    value, cases = run["metrics"].get("answered_and_right"), run["counts"].get("answered_and_right", 0)
    if value is None:
        return f"**{name}**: answered and right {NOT_APPLICABLE} (no answerable cases).  "
    return (f"**{name}**: answered and right {value:.3f}: {round(value * cases)} of {cases} answerable cases answered "
            "with every key fact and every citation supported.  ")


def _case_block(r: dict[str, Any]) -> list[str]:
    s = r["scores"]
    answer = r["answer"]
    out = [f"### `{r['id']}` — score {fmt(s.get('case_score'), 2)} ({', '.join(r['tags'])})", ""]
    for turn in r.get("history", []):
        out.append(f"- *{turn['role']}:* {_cell(turn['content'])}")
    out += [f"**Question:** {r['question']}", ""]
    if answer.get("query") and answer["query"] != r["question"]:
        out += [f"**Searched as:** {answer['query']}", ""]
    expected = "answer" if r["answerable"] else "refuse"
    out += [f"**Expected** ({expected}): {r['reference_answer']}", ""]
    if r["key_facts"]:
        found = set(r.get("found_key_facts", []))
        out += ["**Key facts:** " + ", ".join(f"`{f}` {'✓' if f in found else '✗'}" for f in r["key_facts"]), ""]
    if r.get("error"):
        out += [f"**Error:** `{r['error'].splitlines()[0]}`", ""]
    elif answer["refused"]:
        out += [f"**Got:** refused — {answer.get('refusal_reason', '')}", ""]
    else:
        out += ["**Got:**", "", _quote(answer["answer"]), ""]
        sources = {c["n"]: c["source"] for c in answer.get("citations", [])}
        if sources:
            out += ["Citations: " + "; ".join(f"[{n}] `{src}`" for n, src in sources.items()), ""]
        bad = [j for j in r.get("judgements", []) if not j["supported"]]
        for j in bad:
            reasons = "; ".join(c["reason"] for c in j["cited"] if c["reason"]) or "no citation"
            out.append(f"- judge: not supported — “{_cell(j['text'])[:160]}” ({reasons})")
        if bad:
            out.append("")
    out += [f"Gold sources: {', '.join(f'`{g}`' for g in r['gold_sources']) or '–'}; "
            f"retrieved: {', '.join(f'`{g}`' for g in r.get('retrieved_sources', [])[:5]) or '–'}", ""]
    shown = ("hit@5", "mrr", "key_fact_recall", "token_f1", "citation_precision", "citation_recall", "faithfulness")
    out += ["Scores: " + ", ".join(f"{k} {fmt(s.get(k), 2)}" for k in shown if s.get(k) is not None), ""]
    return out


def _beir_report(out_dir: Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    runs = summary["runs"]
    modes = list(runs)
    index = summary.get("index", {})
    lines = [
        f"# Retrieval evaluation: {summary['name']} (BEIR, {summary['split']} split)",
        "",
        f"{summary['cases']} queries over {summary['documents']} documents "
        f"({index.get('chunks', '?')} chunks, {'cached index' if index.get('cached') else 'index built'}"
        f" in {fmt(index.get('build_s'), 1)} s); {summary['created']}; wall time {summary.get('wall_s', 0):.0f} s.",
        f"Each query retrieves {summary['chunk_depth']} chunks; a document scores as its best chunk.",
        "",
        "| metric | " + " | ".join(MODE_LABELS.get(x, x) for x in modes) + " |",
        "|---|" + "---:|" * len(modes),
    ]
    for metric in BEIR_METRICS:
        lines.append(f"| {metric} | " + " | ".join(fmt(runs[x]["metrics"].get(metric)) for x in modes) + " |")
    lines.append("| retrieval p50 | " + " | ".join(ms(runs[x]["latency"]["retrieval_s"]["p50"]) for x in modes) + " |")
    lines.append("| retrieval p95 | " + " | ".join(ms(runs[x]["latency"]["retrieval_s"]["p95"]) for x in modes) + " |")
    labelled = {MODE_LABELS.get(x, x): runs[x] for x in modes}
    plot_metric_bars(labelled, BEIR_METRICS, out_dir / "plots" / "metrics.png", f"{summary['name']}: retrieval")
    samples = {MODE_LABELS.get(x, x): {"retrieval_s": [r["seconds"] for r in rows if r["mode"] == x]} for x in modes}
    plot_latency(samples, out_dir / "plots" / "latency.png", "Retrieval latency per query")
    lines += ["", "![metrics](plots/metrics.png)", "", "![latency](plots/latency.png)", ""]
    first = modes[0] if modes else None
    worst = sorted((r for r in rows if r["mode"] == first), key=lambda r: (r["scores"]["ndcg@10"], r["id"]))[:WORST]
    lines += [f"## The {WORST} worst queries ({first})", ""]
    for r in worst:
        lines += [
            f"### query {r['id']} — nDCG@10 {r['scores']['ndcg@10']:.2f}", "",
            f"**Query:** {r['question']}", "",
            "Relevant: " + "; ".join(f"`{d}` {_cell(t)[:100]}" for d, t in r["relevant_titles"].items()), "",
            "Retrieved first: " + "; ".join(f"`{d}` {_cell(t)[:100]}" for d, t in
                                           zip(r["ranking"], r["ranking_titles"], strict=False)), "",
        ]
    return "\n".join(lines) + "\n"
