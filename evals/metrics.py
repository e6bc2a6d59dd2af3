"""Metric names and functions: pure, small, and unit-tested (tests/test_evals.py).

Rankings are sequences of ids, best first; ``relevant`` is a collection of ids (or a mapping
id -> graded gain for nDCG). Definitions, one line each, are in ``evals/README.md``.

The names live here, not with the runner, the BEIR runner or the report, so that all three (and the
gate) read one list and none of them has to import another for it.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

# Names ------------------------------------------------------------------------------------------

RETRIEVAL_METRICS = ("hit@1", "hit@5", "recall@10", "mrr", "ndcg@10")
PASSAGE_METRICS = ("answer_passage_hit",)
ANSWER_METRICS = ("direct_em", "direct_f1", "key_fact_recall", "token_f1", "refusal_accuracy", "answerable_answered",
                  "unanswerable_refused", "answered_and_right")
CITATION_METRICS = ("citation_precision", "citation_recall")
FAITHFULNESS_METRICS = ("faithfulness",)
HEADLINE = RETRIEVAL_METRICS + PASSAGE_METRICS + ANSWER_METRICS + CITATION_METRICS + FAITHFULNESS_METRICS
"""The metrics on the gate, the bars and the compare table, in this order."""

EXTRA_METRICS = ("hit@3", "recall@5", "passage_hit", "answer_passage_hit_answered", "key_fact_recall_answered",
                 "token_f1_answered", "citation_precision_answered", "faithfulness_answered", "answered_rate",
                 "hop_rate", "hops")
STAGES = ("retrieval_s", "hop_s", "generation_s", "first_token_s", "verification_s", "direct_s", "total_s")
"""The answer's timings, in pipeline order: latency per stage in summary.json and the report."""

MODES = ("hybrid", "dense", "lexical")
"""BEIR: the retrieval modes each query is scored in."""
MODE_LABELS = {"hybrid": "hybrid", "dense": "dense only", "lexical": "BM25 only"}
BEIR_METRICS = ("ndcg@10", "recall@10", "mrr@10", "hit@10", "recall@20")

FIXED_LIST_SIZE = 5
"""Notes in the fixed-list baseline: the set's most common gold notes, offered to every question alike."""

NOT_APPLICABLE = "n/a"
"""A metric the run measured on no case (``None`` in summary.json): shown as such, never as 0.00, which would
read as a measured failure."""

# Retrieval --------------------------------------------------------------------------------------


def unique_in_order(items: Iterable[str]) -> list[str]:
    """Items with repeats removed, first occurrence kept (a chunk ranking -> a document ranking)."""
    return list(dict.fromkeys(items))


def doc_ranking(scored: Iterable[tuple[str, float]]) -> list[str]:
    """Documents ranked by the best score of any of their chunks: [(doc id, chunk score), ...]."""
    best: dict[str, float] = {}
    for doc, score in scored:
        if doc not in best or score > best[doc]:
            best[doc] = score
    return sorted(best, key=lambda d: -best[d])


def hit_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1.0 when any relevant id is in the top ``k``, else 0.0."""
    return 1.0 if any(item in relevant for item in ranked[:k]) else 0.0


def source_hit(sources: Iterable[str], relevant: Collection[str]) -> float:
    """1.0 when any of the sources (in any order, repeats allowed) is relevant, else 0.0."""
    return 1.0 if any(source in relevant for source in sources) else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant ids found in the top ``k`` (0.0 when nothing is relevant)."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(set(relevant))


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str], k: int | None = None) -> float:
    """1 / rank of the first relevant id (within the top ``k`` if given), else 0.0."""
    for rank, item in enumerate(ranked[:k] if k else ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], gains: Mapping[str, float] | Collection[str], k: int = 10) -> float:
    """Normalised discounted cumulative gain, trec_eval style (linear gain, log2(rank + 1) discount).

    ``gains`` maps id -> graded relevance, or is a collection of ids that all have gain 1.
    Repeated ids in ``ranked`` count once (at their first rank).
    """
    if not isinstance(gains, Mapping):
        gains = dict.fromkeys(gains, 1.0)
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return 0.0
    dcg = sum(gains.get(item, 0.0) / math.log2(rank + 1)
              for rank, item in enumerate(unique_in_order(ranked)[:k], start=1))
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def passage_hit(passage_texts: Iterable[str], gold_passages: Iterable[str]) -> float:
    """1.0 when some passage contains some gold passage (case and whitespace ignored)."""
    texts = [_squash(t) for t in passage_texts]
    return 1.0 if any(_squash(g) in t for g in gold_passages for t in texts) else 0.0


# Answers ----------------------------------------------------------------------------------------

_MARKERS = re.compile(r"\s*\[(?:\d+(?:\s*[,;]\s*\d+)*|unsupported)\]")
_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d,])")
_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d*?)0+(?!\d)")


def normalize_numbers(text: str) -> str:
    """'1,334' -> '1334'; '15.90' -> '15.9'; '16.0' -> '16'; '15.9 per cent' -> '15.9%'."""
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _DECIMAL.sub(lambda m: m.group(1) + ("." + m.group(2) if m.group(2) else ""), text)
    text = re.sub(r"(\d)\s*(?:%|per ?cent\b|percent\b)", r"\1%", text)
    return text


def normalize_answer_text(text: str) -> str:
    """Lower case, NFKC, no citation markers, unified dashes and quotes, numbers normalised."""
    text = unicodedata.normalize("NFKC", text)
    text = _MARKERS.sub("", text)
    text = re.sub(r"[‐‑‒–—−]", "-", text)
    text = re.sub(r"[‘’‛′]", "'", text)
    text = re.sub(r"[“”„″]", '"', text)
    text = text.replace("*", "")
    text = normalize_numbers(text.lower())
    return re.sub(r"\s+", " ", text).strip()


def fact_found(fact: str, answer: str) -> bool:
    """Whether a key fact occurs in the answer (case-insensitive substring, numbers normalised).

    A fact that starts or ends with a digit must not run on into a longer number there:
    "5.9%" is not found in "15.9%", nor "201" in "2014".
    """
    needle = normalize_answer_text(fact)
    if not needle:
        return True
    before = r"(?<![\d.])" if needle[0].isdigit() else ""
    after = r"(?![\d]|\.\d)" if needle[-1].isdigit() else ""
    return re.search(before + re.escape(needle) + after, normalize_answer_text(answer)) is not None


def key_fact_recall(key_facts: Sequence[str], answer: str) -> float:
    """Share of the key facts found in the answer; 1.0 when there are none to find."""
    if not key_facts:
        return 1.0
    return sum(fact_found(f, answer) for f in key_facts) / len(key_facts)


_ARTICLES = {"a", "an", "the"}
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in ".%$"})


def answer_tokens(text: str) -> list[str]:
    """SQuAD-style tokens: normalised, punctuation and articles removed (decimals and % kept)."""
    text = normalize_answer_text(text).translate(_PUNCT)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # full stops go, decimal points stay
    return [t for t in text.split() if t not in _ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bags of tokens); 1.0 when both are empty."""
    pred, ref = answer_tokens(prediction), answer_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the two are the same SQuAD-style tokens (case, punctuation and articles aside)."""
    return float(answer_tokens(prediction) == answer_tokens(reference))


def refusal_confusion(pairs: Iterable[tuple[bool, bool]]) -> dict[str, int]:
    """Counts of (answerable, refused) outcomes.

    Keys: ``answered_answerable`` (right), ``refused_answerable`` (wrong: a missed answer),
    ``answered_unanswerable`` (wrong: an answer the sources cannot back), ``refused_unanswerable`` (right).
    """
    counts = {"answered_answerable": 0, "refused_answerable": 0, "answered_unanswerable": 0,
              "refused_unanswerable": 0}
    for answerable, refused in pairs:
        key = ("refused_" if refused else "answered_") + ("answerable" if answerable else "unanswerable")
        counts[key] += 1
    return counts


def refusal_accuracy(confusion: Mapping[str, int]) -> float:
    """Share of cases handled right: answerable ones answered, unanswerable ones refused."""
    total = sum(confusion.values())
    right = confusion.get("answered_answerable", 0) + confusion.get("refused_unanswerable", 0)
    return right / total if total else 0.0


# Citations --------------------------------------------------------------------------------------


def citation_precision(cited: Sequence[tuple[str, bool]], gold_sources: Collection[str]) -> float:
    """Share of (sentence, cited passage) pairs whose passage is from a gold source and supports the sentence.

    ``cited`` holds one (passage source, judge says it supports the sentence) pair per citation.
    """
    if not cited:
        return 0.0
    return sum(1 for source, supports in cited if supports and source in gold_sources) / len(cited)


def citation_recall(cited_sources: Collection[str], gold_sources: Collection[str]) -> float:
    """Share of the gold sources that the answer cites."""
    if not gold_sources:
        return 0.0
    return len(set(cited_sources) & set(gold_sources)) / len(set(gold_sources))


# Aggregates -------------------------------------------------------------------------------------


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear interpolation between ranks (numpy's default)."""
    data = sorted(float(v) for v in values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    position = (len(data) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


# Retrieval baselines ----------------------------------------------------------------------------


def retrieval_scores(ranking: Sequence[str], gold: set[str]) -> dict[str, float]:
    """The ranking metrics of one answerable case: sources best first, deduplicated, against its gold notes."""
    return {
        "hit@1": hit_at_k(ranking, gold, 1), "hit@3": hit_at_k(ranking, gold, 3),
        "hit@5": hit_at_k(ranking, gold, 5), "recall@5": recall_at_k(ranking, gold, 5),
        "recall@10": recall_at_k(ranking, gold, 10), "mrr": reciprocal_rank(ranking, gold),
        "ndcg@10": ndcg_at_k(ranking, gold, 10),
    }


def fixed_list(rows: Sequence[dict[str, Any]], size: int = FIXED_LIST_SIZE) -> list[str]:
    """The set's most common gold notes over its answerable rows, most common first (ties by name)."""
    counts: dict[str, int] = {}
    for row in rows:
        if row["answerable"]:
            for source in row.get("gold_sources", ()):
                counts[source] = counts.get(source, 0) + 1
    return sorted(counts, key=lambda s: (-counts[s], s))[:size]


def baselines(rows: Sequence[dict[str, Any]], fixed: Sequence[str] | None = None) -> dict[str, Any]:
    """What each retrieval figure is worth without the retriever, over the answerable rows.

    ``fixed_list``: the same few notes offered to every question (``fixed`` or the rows' most common
    gold notes). ``bm25``: BM25 alone on the same standalone queries, where the rows hold its ranking
    (``bm25_sources``, written by ``evals.runner.run_case`` when given a lexical retriever).
    """
    answerable = [r for r in rows if r["answerable"]]
    fixed = list(fixed) if fixed is not None else fixed_list(answerable)

    def means(ranking_of: Callable[[dict[str, Any]], Sequence[str]]) -> dict[str, float | None]:
        scored = [retrieval_scores(ranking_of(r), set(r.get("gold_sources", ()))) for r in answerable]
        return {name: mean(s[name] for s in scored) for name in RETRIEVAL_METRICS}

    out: dict[str, Any] = {"fixed_list": {"sources": fixed, "metrics": means(lambda r: fixed)}}
    if answerable and all("bm25_sources" in r for r in answerable):
        out["bm25"] = {"metrics": means(lambda r: r["bm25_sources"])}
    return out
