"""Comparisons: "Which came first, A or B?", "Which cost more, A or B?". Each option's value is taken
from its own evidence, like is set against like, and the winner is stated with both values cited; a
missing value is named, not guessed. "Which is X, A or B?" with no order picks the option whose
sentences say more of what was asked.
"""

from __future__ import annotations

import re
import time

from spacy.lang.en.stop_words import STOP_WORDS

from assistant.answer import AnswerSpan, DirectAnswer
from assistant.reading.asks import Asked
from assistant.reading.evidence import Evidence, whole


def compare(asked: Asked, evidence: list[Evidence]) -> DirectAnswer | None:
    """The direct answer to an "A or B" question, or None when no option has a value."""
    found = [_option_values(option, asked, evidence) for option in asked.options]
    # Compare like with like: a sum of money with a sum of money, not with a count of firms.
    shared = set.intersection(*(set(f) for f in found)) if found else set()
    if asked.order not in ("earliest", "latest") and shared - {"DATE"}:
        shared -= {"DATE"}  # "which cost more": a date beside the cost is not what is weighed
    kind = max(shared, key=lambda label: sum(f[label][0] for f in found), default=None)
    values: list[tuple[str, AnswerSpan | None, float | None]] = []
    for option, by_label in zip(asked.options, found, strict=True):
        pick = by_label.get(kind) if kind else max(by_label.values(), key=lambda v: v[0], default=None)
        value = pick[1] if pick is not None else None
        values.append((option, value, _magnitude(value.text) if value is not None else None))
    if all(v is None for _, v, _ in values):
        return None
    shown = "; ".join(f"{option}: {value.text} [{value.n}]" if value is not None
                      else f"the sources give no value for {option}" for option, value, _ in values)
    spans = tuple(v for _, v, _ in values if v is not None)
    missing = tuple(option for option, value, _ in values if value is None)
    if not asked.order:
        return _covering_option(asked, evidence)
    magnitudes = [m for _, _, m in values]
    if asked.order and None not in magnitudes and magnitudes[0] != magnitudes[1]:
        low = asked.order in ("earliest", "least")
        winner = min(values, key=lambda v: v[2]) if low else max(values, key=lambda v: v[2])  # type: ignore[arg-type,return-value]
        return DirectAnswer(text=f"{winner[0]} ({shown}).", answer=winner[0], spans=spans)
    return DirectAnswer(text=f"{capitalised(shown)}.", answer="", spans=spans, missing=missing)


def _option_values(option: str, asked: Asked, evidence: list[Evidence]) -> dict[str, tuple[float, AnswerSpan]]:
    """The date or figure of each type that the evidence about ``option`` gives, nearest its words, with
    how well it fits.

    A sentence or passage title that spells the option whole is about it. Failing that, the sentences
    that hold most of the option's own words (those the other option lacks): "the launch of phase I of
    the Big Fund" is in "Phase I of the ... ('Big Fund') set up on 26 September 2014", and "Darchinyan"
    stands for "Vic Darchinyan" after a passage's first mention. A value the option itself holds (the
    "2019" of "exports in 2019") is not its value.
    """
    labels = ("DATE",) if asked.order in ("earliest", "latest") else ("CARDINAL", "QUANTITY", "MONEY", "PERCENT",
                                                                        "DATE")
    key = re.sub(r"^(the|a|an)\s+", "", option.lower())
    others = [o for o in asked.options if o != option]
    own = _words(option) - set().union(*(_words(o) for o in others)) or _words(option)
    named_whole = any(key in e.doc.text.lower() or key in (e.citation.chunk.title or "").lower() for e in evidence)
    best: dict[str, tuple[float, AnswerSpan]] = {}
    spelled = re.sub(r"\s+", "", option.lower())
    for e in evidence:
        text = e.doc.text.lower()
        if named_whole:
            at = text.find(key)
            if at < 0 and key not in (e.citation.chunk.title or "").lower():
                continue
            anchors = [e.doc.char_span(at, at + len(key), alignment_mode="expand").start] if at >= 0 else []
            fit = 1.0
        else:
            said = {t.lemma_.lower() for t in e.doc} | {t.lower_ for t in e.doc} | _words(e.citation.chunk.title)
            fit = len(own & said) / len(own)
            if fit < 0.5:
                continue
            anchors = [t.i for t in e.doc if t.lower_ in own or t.lemma_.lower() in own]
        for entity in e.doc.ents:
            if entity.label_ not in labels or re.sub(r"\s+", "", entity.text.lower()) in spelled \
                    or _magnitude(entity.text) is None:
                continue
            distance = min((abs(entity.start - a) for a in anchors), default=40)
            score = fit - 0.02 * distance - 0.01 * min(e.rank, 20)
            if entity.label_ not in best or score > best[entity.label_][0]:
                best[entity.label_] = (score, e.answer_span(whole(entity)))
    return best


def _words(text: str) -> set[str]:
    """The content words of ``text``, lower case (spaCy's English stop words left out)."""
    return {w for w in re.findall(r"[\w&+-]+", (text or "").lower()) if w not in STOP_WORDS and len(w) > 1}


def _covering_option(asked: Asked, evidence: list[Evidence]) -> DirectAnswer | None:
    """For "Which is X, A or B?" with no comparison: the option whose sentences say more of what the
    question asks (its words other than the options'), when one clearly does; None when neither does."""
    option_words = {w for option in asked.options for w in option.lower().split()}
    wanted = asked.lemmas - option_words
    best: list[tuple[float, str, Evidence, int]] = []
    for option in asked.options:
        key = re.sub(r"^(the|a|an)\s+", "", option.lower())
        for e in evidence:
            at = e.doc.text.lower().find(key)
            if at < 0:
                continue
            cover = len(wanted & {t.lemma_.lower() for t in e.doc}) / max(1, len(wanted))
            best.append((cover, option, e, at))
    best.sort(key=lambda b: -b[0])
    if not best or best[0][0] == 0 or any(b[0] == best[0][0] and b[1] != best[0][1] for b in best[1:]):
        return None
    _, option, e, at = best[0]
    key_length = len(re.sub(r"^(the|a|an)\s+", "", option.lower()))
    span = e.doc.char_span(at, at + key_length, alignment_mode="expand")
    if span is None:
        return None
    value = e.answer_span(span)
    return DirectAnswer(text=f"{value.text} [{value.n}].", answer=value.text, spans=(value,))


_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}


def _magnitude(text: str) -> float | None:
    """A value to compare: a year (with month and day when given) or a figure, with its scale word."""
    year = re.search(r"\b(1\d{3}|20\d\d)\b", text)
    if year:
        return _date_value(text[: year.end()]) or float(year.group(1))
    number = re.search(r"\d+(?:[.,]\d+)*", text)
    if number is None:
        return None
    value = float(number.group(0).replace(",", ""))
    scale = next((s for w, s in _SCALE.items() if w in text.lower()), 1.0)
    return value * scale


def _date_value(text: str) -> float | None:
    """A date ending in its year as a number that orders by day ("8 May 2015" after "26 September
    2014"; "May 2021" before "23 June 2021"), read with the C library's month names; None if not one."""
    words = re.sub(r"(?<=\d)(st|nd|rd|th)\b|,", "", text).split()
    for size, formats in ((3, ("%d %B %Y", "%B %d %Y", "%d %b %Y", "%b %d %Y")), (2, ("%B %Y", "%b %Y"))):
        for fmt in formats:
            try:
                when = time.strptime(" ".join(words[-size:]), fmt)
            except ValueError:
                continue
            day = when.tm_mday if "%d" in fmt else 1
            return when.tm_year + (when.tm_mon - 1) / 12 + (day - 1) / 372
    return None


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
