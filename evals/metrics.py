"""Metric functions: pure, small, and unit-tested (tests/test_evals.py).

Rankings are sequences of ids, best first; ``relevant`` is a collection of ids (or a mapping
id -> graded gain for nDCG). Definitions, one line each, are in ``evals/README.md``.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

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
