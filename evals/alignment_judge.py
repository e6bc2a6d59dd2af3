"""The default judge: does one passage sentence (or a run of adjacent ones) state a sentence's content?

The sentence's content, for this judge:

    every figure of the sentence, with its unit (15.9% is not 15.9 billion, RMB is not $), next to
    the same words; every name (capitalised words and acronyms); every negation, about the same
    words; no negation of the passage that the sentence drops; and at least ``CONTENT_SHARE`` of
    the sentence's other content words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from evals.judge import CITATION_MARKER, STOP_WORDS, Judgement, stem

CONTENT_SHARE = 0.60
"""Share of a sentence's content words (names and numbers aside) that its passage sentence must hold."""

_NEGATIONS = frozenset({"not", "no", "never", "without", "none", "nor", "neither", "nothing", "nobody", "nowhere",
                        "cannot"})
_UNIT_WORDS = frozenset({"thousand", "million", "billion", "trillion", "bn", "mn", "tn", "per", "cent", "percent",
                         "yuan", "renminbi", "rmb", "cny", "dollar", "dollars", "usd", "euro", "euros", "eur"})
# "one" is left out: as a pronoun ("one of them") it is no figure.
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                 "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
                 "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
             "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth")
_ORDINAL_WORDS = {word: n for n, word in enumerate(_ORDINALS.split(), start=1)}
_SCALES = {"thousand": 10**3, "k": 10**3, "million": 10**6, "mn": 10**6, "m": 10**6, "billion": 10**9,
           "bn": 10**9, "b": 10**9, "trillion": 10**12, "tn": 10**12}
_CURRENCIES = {"$": "usd", "us$": "usd", "usd": "usd", "dollars": "usd", "rmb": "cny", "cny": "cny",
               "yuan": "cny", "renminbi": "cny", "€": "eur", "eur": "eur", "euros": "eur", "£": "gbp"}
_ABBREVIATION_WORDS = """e.g i.e mr mrs ms dr prof st no vs etc inc co corp ltd jr sr fig approx
jan feb mar apr jun jul aug sep sept oct nov dec"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_DEMONYM_ENDINGS = ("ese", "n", "an", "ian", "ean", "i", "ish")

_QUANTITY = re.compile(
    r"(?<![\w.])(?P<cur>US\$|\$|€|£|(?:RMB|CNY|USD|EUR)\s?)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:(?P<ord>st|nd|rd|th)\b|\s?(?P<scale>[Tt]rillion|[Bb]illion|[Mm]illion|[Tt]housand|tn|bn|mn|B|M|K)\b)?"
    r"(?:\s?(?P<pct>%|per\s?cent\b|percent\b)|\s(?P<cur2>yuan|renminbi|dollars|euros|RMB|USD)\b)?"
)
_SPELLED = re.compile(r"\b(" + "|".join(sorted({*_NUMBER_WORDS, *_ORDINAL_WORDS}, key=len, reverse=True))
                      + r")\b", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'&]*|\d+(?:[.,]\d+)*")
_BOUNDARY = re.compile(r"[.!?]['\")\]*]*\s+(?=['\"(*]*[A-Z0-9])")
_BULLET = re.compile(r"(?:[-*+]|\d+[.)])\s+")
_TIDY = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": " ", "—": " ", "-": " ", "/": " "})


def quantities(text: str) -> list[Quantity]:
    """The figures of a text with their units: '$47.5 billion', 'RMB 344 billion', '15.9 per cent', 'third'."""
    return [q for q, _, _ in _quantity_spans(_tidy(text))]


def _tidy(text: str) -> str:
    """Citation markers and Markdown emphasis blanked, dashes and slashes to spaces; offsets kept."""
    text = CITATION_MARKER.sub(lambda m: " " * len(m[0]), text)
    # "US$" is a currency, not a mention of the US.
    return text.translate(_TIDY).replace("**", "  ").replace("__", "  ").replace("US$", "  $")


def _quantity_spans(text: str) -> list[tuple[Quantity, int, int]]:
    found = []
    for match in _QUANTITY.finditer(text):
        raw = Decimal(match["num"].replace(",", ""))
        scale = _SCALES[match["scale"].lower()] if match["scale"] else 1
        currency = (match["cur"] or match["cur2"] or "").strip().lower()
        kind = "%" if match["pct"] else "ord" if match["ord"] else _CURRENCIES.get(currency, "")
        found.append((Quantity(_plain(raw * scale), _plain(raw), kind, scale != 1), match.start(), match.end()))
    for match in _SPELLED.finditer(text):
        word = match[1].lower()
        value = Decimal(_ORDINAL_WORDS.get(word) or _NUMBER_WORDS[word])
        kind = "ord" if word in _ORDINAL_WORDS else ""
        found.append((Quantity(_plain(value), _plain(value), kind, False), match.start(), match.end()))
    return found


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _has_quantity(wanted: Quantity, pool: Iterable[Quantity]) -> bool:
    """A unit the sentence gives must be the passage's too; a bare number matches the same figure in any unit."""
    for q in pool:
        if wanted.kind:
            if q.kind == wanted.kind and q.value == wanted.value:
                return True
        elif q.value == wanted.value or (not wanted.scaled and q.raw == wanted.raw):
            return True
    return False


def _tokens(text: str) -> list[Token]:
    """Words and numbers of a tidied text, each with its offset and what it is to the judge."""
    out: list[Token] = []
    previous_end = clause = part = 0
    for match in _TOKEN.finditer(text):
        raw = match[0].strip("'")
        gap = text[previous_end:match.start()]
        previous_end = match.end()
        if not raw:
            continue
        lower = raw.lower()
        lower = lower[:-2] if lower.endswith("'s") else lower
        initial = not out or bool(re.search(r"[.!?:;\n]", gap))
        clause += bool(out) and bool(re.search(r"[.!?:;,()|\n]", gap))
        part += bool(out) and bool(re.search(r"[.!?;|\n]", gap))
        if raw[0].isdigit():
            out.append(Token(raw, lower, "", "number", initial, match.start(), clause, part))
            continue
        negation = lower in _NEGATIONS or lower.endswith("n't")
        content = (not negation and len(lower) > 1 and lower not in STOP_WORDS and lower not in _UNIT_WORDS
                   and lower not in _NUMBER_WORDS and lower not in _ORDINAL_WORDS)
        kind = "negation" if negation else "content" if content else "other"
        out.append(Token(raw, lower, stem(lower) if content else "", kind, initial, match.start(), clause, part))
    # "not only ... but also" adds, it does not deny.
    for i, t in enumerate(out[:-1]):
        if t.lower == "not" and out[i + 1].lower == "only":
            out[i] = Token(t.raw, t.lower, "", "other", t.initial, t.start, t.clause, t.part)
    return out


def _names(tokens: Sequence[Token]) -> list[str]:
    """Names of a sentence: capitalised words and acronyms.

    A capitalised first word is a name only when it cannot be an ordinary word put first: it has
    capitals inside ("CETC", "SwaySure") or starts a run of capitalised words ("South Korea").
    """
    def capitalised(t: Token) -> bool:
        return t.kind == "content" and t.raw[0].isupper() and len(t.raw) > 1

    names = []
    for i, t in enumerate(tokens):
        if not capitalised(t):
            continue
        if t.initial:
            inner_capitals = any(c.isupper() for c in t.raw[1:])
            starts_run = i + 1 < len(tokens) and capitalised(tokens[i + 1]) and not tokens[i + 1].initial
            if not (inner_capitals or starts_run):
                continue
        names.append(t.lower)
    return names


def _name_in(name: str, words_there: set[str]) -> bool:
    """Exact, plural, or a people's adjective of a place named there ("Chinese" for "China")."""
    if name in words_there or name.rstrip("s") in words_there or name + "s" in words_there:
        return True
    for word in words_there:
        short, long = sorted((word, name), key=len)
        base = short[:-1] if short[-1] in "aey" else short
        if len(base) >= 4 and long.startswith(base) and long[len(base):] in _DEMONYM_ENDINGS:
            return True
    return False


def _word_in(word: str, stems: Iterable[str]) -> bool:
    """Same stem, or one stem the start of the other when both are long ("produc" / "production")."""
    for other in stems:
        if other == word or (min(len(other), len(word)) >= 5 and (other.startswith(word) or word.startswith(other))):
            return True
    return False


def _negations(tokens: Sequence[Token], reach: int = 3) -> list[Negation]:
    """Each negation with the content words around it in its clause, and the words it governs (the next two)."""
    out = []
    for i, t in enumerate(tokens):
        if t.kind != "negation":
            continue
        content = [(j, u.stem) for j, u in enumerate(tokens) if u.kind == "content" and u.clause == t.clause]
        before = [s for j, s in content if j < i][-reach:]
        after = [s for j, s in content if j > i][:reach]
        out.append(Negation(frozenset(before + after), tuple(after[:2] or before[-2:])))
    return out


def _figure(tokens: Sequence[Token], quantity: Quantity, start: int, end: int, reach: int = 4) -> Figure:
    """A figure with the content words next to it in its sentence, and those within ``reach`` of it."""
    part = next((t.part for t in tokens if t.start >= start), tokens[-1].part if tokens else 0)
    before = [t.stem for t in tokens if t.start < start and t.kind == "content" and t.part == part]
    after = [t.stem for t in tokens if t.start >= end and t.kind == "content" and t.part == part]
    return Figure(quantity, tuple(before[-1:] + after[:1]), frozenset(before[-reach:] + after[:reach]))


def _analyse(text: str) -> Analysis:
    tidied = _tidy(text)
    tokens = _tokens(tidied)
    return Analysis(
        stems=frozenset(t.stem for t in tokens if t.kind == "content"),
        words=frozenset(t.lower for t in tokens if t.kind in ("content", "other")),
        figures=tuple(_figure(tokens, q, start, end) for q, start, end in _quantity_spans(tidied)),
        negations=tuple(_negations(tokens)), names=tuple(dict.fromkeys(_names(tokens))),
    )


def split_sentences(text: str) -> list[str]:
    """Sentence ends that are not abbreviations ("U.S.", "e.g.", "No. 5")."""
    out, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = text[start:match.start()].split()
        last = before[-1].lower().rstrip(".") if before else ""
        if last in _ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)*[a-z]", last):
            continue
        out.append(text[start:match.end()].strip())
        start = match.end()
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


def passage_units(passage: str) -> tuple[list[list[str]], list[str]]:
    """(paragraphs as lists of sentences, heading lines). A list item is a paragraph; a table is one, row by row."""
    paragraphs: list[list[str]] = []
    headings: list[str] = []
    current: list[str] = []
    rows: list[str] = []

    def close() -> None:
        if current:
            paragraphs.append(split_sentences(" ".join(current)))
            current.clear()
        if rows:
            paragraphs.append(rows[:])
            rows.clear()

    for line in passage.splitlines():
        stripped = line.strip()
        if not stripped:
            close()
        elif stripped.startswith("#"):
            close()
            headings.append(stripped.lstrip("#").strip())
        elif stripped.startswith("|") or stripped.endswith("|"):  # a chunk may start inside a row
            if current:
                close()
            if not set(stripped) <= set("|-: "):
                rows.append(stripped.strip("|").replace("|", ";"))
        elif _BULLET.match(stripped):
            close()
            current.append(_BULLET.sub("", stripped, count=1))
        else:
            if rows:
                close()
            current.append(stripped)
    close()
    return paragraphs, headings


class AlignmentJudge:
    """The default: the sentence's figures, names and negations found in one passage sentence.

    Lexical, but about content: a sentence that changes a figure or its unit, names someone else,
    or adds or drops a "not" is unsupported however many words it shares with the passage. A run
    of adjacent sentences of one paragraph (two, or as many as the sentence quotes) may support it
    together. The words next to each figure in the sentence must be within four words of it in the
    passage, so a figure cannot be moved to another subject of the same passage.
    Known blind spots: a name swapped for another that the same passage sentence holds ("China
    accounts for 60%" where it says "Taiwan accounts for 60%" in a sentence about China), relations
    between words that are all there, and synonyms next to a figure (judged unsupported).
    """

    name = "alignment"

    def __init__(self, content_share: float = CONTENT_SHARE) -> None:
        self.content_share = content_share

    def judge(self, sentence: str, passage: str) -> Judgement:
        claim = _analyse(sentence)
        paragraphs, headings = passage_units(passage)
        context = frozenset().union(*(_analyse(h).stems for h in headings))
        best: tuple[list[str], float] | None = None
        # A sentence that quotes several table rows or sentences may take as many passage units together.
        pieces = sum(len(split_sentences(row)) for row in re.split(r"\|\s+\|", sentence))
        for window in _windows([[_analyse(s) for s in p] for p in paragraphs], max(2, pieces)):
            problems, share = self._problems(claim, window, context)
            if not problems:
                return Judgement(True, share, ())
            if best is None or (len(problems), -share) < (len(best[0]), -best[1]):
                best = (problems, share)
        everywhere = quantities(passage)
        missing = tuple(sorted({_show(f.quantity) for f in claim.figures if not _has_quantity(f.quantity, everywhere)}))
        problems, share = best or (["the passage has no text"], 0.0)
        return Judgement(False, share, missing, "; ".join(problems))

    def _problems(self, claim: Analysis, window: Sequence[Analysis],
                  context: frozenset[str]) -> tuple[list[str], float]:
        problems = []
        lost = [f.quantity for f in claim.figures if not _has_quantity(f.quantity, [
            g.quantity for unit in window for g in unit.figures])]
        if lost:
            problems.append("figures not in one passage sentence: " + ", ".join(_show(q) for q in lost))
        moved = [f.quantity for f in claim.figures if f.quantity not in lost and not any(
            _has_quantity(f.quantity, [g.quantity]) and all(_word_in(w, g.around) for w in f.near)
            for unit in window for g in unit.figures)]
        if moved:
            problems.append("figures the passage gives about something else: " + ", ".join(_show(q) for q in moved))
        words_there = set().union(*(unit.words for unit in window))
        names = [n for n in claim.names if not _name_in(n, words_there)]
        if names:
            problems.append("names not in the passage sentence: " + ", ".join(names))
        denials = [m for unit in window for m in unit.negations]
        if any(not any(not n.around or _overlap(n.around, m.around) for m in denials) for n in claim.negations):
            problems.append("a negation the passage sentence does not make")
        dropped = [m for m in denials if any(_word_in(w, claim.stems) for w in m.governs)
                   and not any(_overlap(m.around, n.around) for n in claim.negations)]
        if dropped:
            problems.append("the passage sentence denies it: not " + " ".join(dropped[0].governs))
        stems_there = set().union(*(unit.stems for unit in window)) | context
        plain = claim.stems - {stem(n) for n in claim.names}
        share = sum(_word_in(s, stems_there) for s in plain) / len(plain) if plain else 1.0
        if share < self.content_share:
            problems.append(f"only {share:.0%} of the content words are in the passage sentence")
        return problems, share


def _show(q: Quantity) -> str:
    return q.raw + ("%" if q.kind == "%" else "")


def _overlap(a: Iterable[str], b: Iterable[str]) -> bool:
    return any(_word_in(w, b) for w in a)


def _windows(paragraphs: Sequence[Sequence[Analysis]], widest: int) -> Iterator[tuple[Analysis, ...]]:
    """Runs of adjacent sentences of one paragraph, single sentences first, up to ``widest`` long."""
    for width in range(1, widest + 1):
        for units in paragraphs:
            yield from (tuple(units[i:i + width]) for i in range(len(units) - width + 1))



# Records ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    value: str
    """Normalised, scale applied: '$47.5 billion' -> '47500000000'."""
    raw: str
    """The digits as written, normalised: '1,334' -> '1334', '15.90' -> '15.9'."""
    kind: str
    """'%', a currency ('usd', 'cny', 'eur', 'gbp'), 'ord' for an ordinal, or '' for a bare number."""
    scaled: bool


@dataclass(frozen=True)
class Token:
    raw: str
    lower: str
    stem: str
    kind: str
    """'content', 'number', 'negation' or 'other' (stop words, unit words, spelled numbers)."""
    initial: bool
    """First word of the text or of a sentence in it: capitalised there by grammar, not as a name."""
    start: int
    clause: int
    """Counts punctuation breaks (, ; : | and brackets) and sentence ends from the start of the text."""
    part: int
    """Counts sentence ends, semicolons and table cell breaks: a figure's words stay within its part."""


@dataclass(frozen=True)
class Figure:
    quantity: Quantity
    near: tuple[str, ...]
    """The content words just before and just after it: what a sentence says the figure is about."""
    around: frozenset[str]
    """Content words within four of it in its sentence: where a passage may put the same words."""


@dataclass(frozen=True)
class Negation:
    around: frozenset[str]
    """Content words within three of it, either side."""
    governs: tuple[str, ...]
    """The next two content words (or the last two before it, at the end of a sentence)."""


@dataclass(frozen=True)
class Analysis:
    stems: frozenset[str]
    words: frozenset[str]
    figures: tuple[Figure, ...]
    negations: tuple[Negation, ...]
    names: tuple[str, ...]
