"""Does a passage support a sentence? An independent judge for the faithfulness and citation metrics.

Deliberately not ``assistant.verification``: the answerer's own verifier chose the citations,
so scoring with it would only check it against itself. Nor the verifier's kind of test: asking
whether the passage holds the sentence's words and numbers passes a sentence that keeps them but
swaps a name, moves a figure to another subject or drops a "not". The default judge,
``AlignmentJudge``, asks whether one passage sentence (or a run of adjacent ones) states the
sentence's *content*:

    every figure of the sentence, with its unit (15.9% is not 15.9 billion, RMB is not $), next to
    the same words; every name (capitalised words and acronyms); every negation, about the same
    words; no negation of the passage that the sentence drops; and at least ``CONTENT_SHARE`` of
    the sentence's other content words.

``agreement`` measures a judge against hand labels (``sets/judge_labels.jsonl``); every QA run
records the figure. ``LexicalJudge``, the older word-share test, remains only as the number check
inside ``LLMJudge`` (``chokepoint eval --judge llm``). The LLM judge is the model the answerer
uses, so it may grade a sample for a note but is never the gate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

WORD_SHARE = 0.60
CONTENT_SHARE = 0.60
"""Share of a sentence's content words (names and numbers aside) that its passage sentence must hold."""

LABELS = Path(__file__).resolve().parent / "sets" / "judge_labels.jsonl"

_STOP_WORDS = """
a about above after again against all also am an and
any are as at be been before being below between both but by can could did do does doing down during each
else few for from further had has have having he her here hers herself him himself his how however i if in
into is it its itself just may me might more most must my myself no nor not now of off on once only or other
our ours ourselves out over own per same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up upon very via was we were what when where
which while who whom whose why will with within without would yet you your yours according said says say
reported report also one another
"""
_STOP = frozenset(_STOP_WORDS.split())

_MARKER = re.compile(r"\s*\[(?:\d+(?:\s*[,;]\s*\d+)*|unsupported)\]")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")


def stem(word: str) -> str:
    """A light English stemmer: plural and verb endings off, a final e off ("produces" -> "produc")."""
    word = word.lower().strip("'-")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies") and not word.endswith(("eies", "aies")):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("us", "ss", "is")):
        word = word[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if word.endswith("y") and len(word) > 3:
        word = word[:-1] + "i"
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def words(text: str) -> set[str]:
    """Stemmed content words of a text (letters only; numbers are checked on their own)."""
    text = _MARKER.sub(" ", text.lower())
    return {stem(w) for w in _WORD.findall(text) if w not in _STOP and len(w) > 1}


def numbers(text: str) -> set[str]:
    """Numbers of a text, normalised: '1,334' -> '1334', '15.90' -> '15.9'."""
    found = set()
    for raw in _NUMBER.findall(_MARKER.sub(" ", text)):
        if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", raw):
            raw = raw.replace(",", "")
        for part in raw.split(","):  # "2014,2020" written without a space: two numbers
            if "." in part:
                part = part.rstrip("0").rstrip(".")
            found.add(part)
    return found


class Judge(Protocol):
    name: str

    def judge(self, sentence: str, passage: str) -> Judgement: ...


class LexicalJudge:
    """The older word-share test: numbers all present, and >= 60% of the content words.

    A sentence that keeps the words but adds a "not" or swaps a name passes it (it gets 10 of the 30
    hand labels wrong), so it is no longer the gate; ``LLMJudge`` uses it to refuse a figure the
    passage lacks before asking the model.
    """

    name = "lexical"

    def __init__(self, word_share: float = WORD_SHARE) -> None:
        self.word_share = word_share

    def judge(self, sentence: str, passage: str) -> Judgement:
        sentence_words = words(sentence)
        passage_words = words(passage)
        share = len(sentence_words & passage_words) / len(sentence_words) if sentence_words else 1.0
        missing = tuple(sorted(numbers(sentence) - numbers(passage)))
        supported = not missing and share >= self.word_share
        reason = "" if supported else (
            f"numbers not in the passage: {', '.join(missing)}" if missing
            else f"only {share:.0%} of the content words are in the passage"
        )
        return Judgement(supported, share, missing, reason)


_LLM_PROMPT = """Passage:
<<<
{passage}
>>>

Claim: {sentence}

Does the passage state everything the claim says (every name, figure and date)? Answer with one word: yes or no."""


class LLMJudge:
    """Asks a chat model (LangChain interface) whether the passage supports the sentence.

    The lexical check on numbers still applies: a figure the passage lacks is never supported.
    """

    name = "llm"

    def __init__(self, chat_model: Any) -> None:
        self.chat_model = chat_model
        self.lexical = LexicalJudge()

    def judge(self, sentence: str, passage: str) -> Judgement:
        base = self.lexical.judge(sentence, passage)
        if base.missing_numbers:
            return base
        reply = self.chat_model.invoke([("user", _LLM_PROMPT.format(passage=passage, sentence=sentence))],
                                       max_tokens=3)
        answer = str(getattr(reply, "content", "")).strip().lower()
        supported = answer.startswith("yes")
        return Judgement(supported, base.word_share, (), "" if supported else f"LLM judge said {answer[:20]!r}")


# The alignment judge ---------------------------------------------------------------------------

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
    text = _MARKER.sub(lambda m: " " * len(m[0]), text)
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
        content = (not negation and len(lower) > 1 and lower not in _STOP and lower not in _UNIT_WORDS
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


def passage_text(citation: dict[str, Any]) -> str:
    """What the judge reads for a cited passage: its title and heading (context the answerer saw) and text.

    Title and heading come as Markdown headings, so that the alignment judge reads them as context
    for every sentence of the passage rather than as part of its first sentence.
    """
    lines = [f"{mark} {citation[key]}" for mark, key in (("#", "title"), ("##", "heading")) if citation.get(key)]
    return "\n".join([*lines, citation.get("text", "")] if citation.get("text") else lines)


# Agreement with hand labels --------------------------------------------------------------------


def load_labels(path: Path = LABELS) -> list[Label]:
    """The hand-labelled sentence-passage pairs; a malformed line is refused with its number."""
    labels = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        fields = {"id": str, "sentence": str, "passage": str, "supported": bool, "why": str}
        if set(row) != set(fields) or not all(isinstance(row[k], t) for k, t in fields.items()):
            raise ValueError(f"{path.name} line {number}: expected fields {', '.join(fields)} with those types")
        labels.append(Label(**row))
    return labels


def agreement(judge: Judge, labels: Sequence[Label] | None = None) -> Agreement:
    """How many hand labels the judge gets right, and which it gets wrong."""
    labels = load_labels() if labels is None else labels
    wrong = tuple(label.id for label in labels
                  if judge.judge(label.sentence, label.passage).supported != label.supported)
    return Agreement(judge.name, len(labels) - len(wrong), len(labels), wrong)


# Records ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    supported: bool
    word_share: float
    missing_numbers: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True)
class Label:
    id: str
    sentence: str
    passage: str
    supported: bool
    why: str


@dataclass(frozen=True)
class Agreement:
    judge: str
    agreed: int
    total: int
    disagreements: tuple[str, ...]

    @property
    def line(self) -> str:
        return f"judge agreement with {self.total} hand labels: {self.agreed}/{self.total}"

    def as_dict(self) -> dict[str, Any]:
        return {"judge": self.judge, "agreed": self.agreed, "total": self.total,
                "disagreements": list(self.disagreements)}


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
