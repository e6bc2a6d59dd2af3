"""What a question asks for: the kind of answer (a person, a time, a number ...) and whether a sentence holds one.

The extractive answerer, the second retrieval hop and the refusal decision all read the question's
form the same way. Only question words and answer-type patterns live here (who, when, how many, a
year, a month, a figure); nothing is taken from any corpus or test set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from index.words import content_words

Kind = Literal["person", "time", "place", "number", "choice", "list", "entity", "description"]

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december"
           "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_TIME = re.compile(
    rf"(?<![\d.,])(1\d{{3}}|20\d\d)s?(?![\d.,]*\d)|\b({_MONTHS})\.?\s+\d|\b\d{{1,2}}\s+({_MONTHS})\b"
    r"|\b\d{1,2}(st|nd|rd|th)\s+century\b|\b(early|mid|late)[- ]\w+ century\b"
    r"|\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth"
    r"|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty-first)\s+century\b",
    re.I,
)
_COUNT_WORDS = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen"
                "|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
                "|hundred|hundreds|thousand|thousands|million|millions|billion|billions|trillion|dozen|dozens"
                "|once|twice|thrice|half|quarter|single|double|triple")
_NUMBER = re.compile(rf"\d+(?:[.,]\d+)*%?|\b({_COUNT_WORDS})\b|\b\w+-time\b", re.I)
_COUNTED = re.compile(r"\bhow many (\w+)", re.I)
_QUOTED = re.compile(r"[\"“]([^\"”]{2,80})[\"”]")

_PERSON_NOUNS = ("person|people|man|woman|singer|actor|actress|author|writer|player|artist|politician|director"
                 "|producer|musician|composer|founder|leader|president|king|queen")
_PLACE_NOUNS = "country|countries|city|cities|state|states|town|region|province|place|continent|county|island|location"
_TIME_NOUNS = "year|years|decade|century|month|day|date|era|period"
# Typed phrases decide wherever they stand ("... the capital of what country?"); a bare question word decides
# only at the head of the question, where it is not a relative pronoun ("a consultant who ...").
_TYPED: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    ("number", re.compile(r"\bhow (many|much|long|old|far|big|large|tall|high|often|fast)\b"
                          r"|\b(what|which) (is |was |were |are )?(the )?(number|percentage|share|amount|population"
                          r"|size|age|cost|length|height|total)\b|\bwhat (percent|proportion)\b"
                          r"|\bas an? (share|percentage|proportion|fraction) of\b", re.I)),
    ("time", re.compile(rf"\b(what|which)\s+(\w+\s+)?({_TIME_NOUNS})\b|\bsince when\b|\bhow long ago\b", re.I)),
    ("place", re.compile(rf"\b(what|which)\s+(\w+\s+)?({_PLACE_NOUNS})\b", re.I)),
    ("person", re.compile(rf"\b(what|which)\s+(\w+\s+)?({_PERSON_NOUNS})\b", re.I)),
)
_HEAD = re.compile(r"^\W*(?:(?:and|so|but|in|at|from|to|by|for|of|on|with)\s+)?(\w+)", re.I)
_HEAD_KIND: dict[str, Kind] = {"when": "time", "who": "person", "whom": "person", "whose": "person",
                               "where": "place", "why": "description", "how": "description",
                               "describe": "description", "explain": "description"}
_LIST = re.compile(r"\b(list|name|enumerate)\s+(the|all|some|three|two|four|five)\b"
                   r"|^\W*(what|which)\s+(\w+\s+){0,2}\w+s\s+(are|were|make up)\b|\b(what|which) are the \w+s\b", re.I)
_DESCRIPTION = re.compile(r"\bwhat (is|are|was|were)\s+(a|an|the)?\s*\w+(\s\w+)?\s*\??$|\bwhat does\b|\bwhat did\b"
                          r"|\bmeaning of\b|\bdifference between\b|\bwhat (is|was) the (role|function|purpose|"
                          r"meaning|origin|cause|effect|significance)\b", re.I)
# "Where does X come from?" asks for an origin: a place may answer it, and so may a story or a language.
# ("Where is X from?" and "Where did the ship sail from?" ask for a place.)
_ORIGIN = re.compile(r"^\W*where\s+(do|does|did)\b.*\b(come|originate|derive|get)s?\b.*\bfrom\W*$", re.I)
# "When does X happen?" in the present tense asks for a circumstance or a point in a story ("after the
# accident", "in the second season") as often as for a date; "when did/was" asks for a date.
_HABITUAL = re.compile(r"^\W*when\s+(do|does)\b", re.I)
_CHOICE = re.compile(r"\s+or\s+", re.I)
_SECOND_PART = re.compile(r"(?:,|\band)\s+(?:and\s+)?(?:what|which|who|whom|when|where|why|how|is|are|was|were"
                          r"|does|did|do)\b|^\W*(?:compare|contrast)\b|\bboth\b|\bcompared? (?:with|to)\b", re.I)


@dataclass(frozen=True)
class QuestionForm:
    kind: Kind
    words: frozenset[str]
    """The question's content words (stemmed, stop words and question words removed)."""
    names: tuple[str, ...]
    """Capitalised or quoted names in the question ("Varnholt", "Lisk Estuary")."""
    choices: tuple[str, ...] = ()
    """For "X or Y?" questions, the two options."""
    parts: int = 1
    """How many questions it asks at once ("What is X, and when did Y?" asks two)."""
    unit: str = ""
    """What a "how many" question counts, stemmed ("how many times" -> "time"); empty otherwise."""

    @property
    def typed(self) -> bool:
        """Whether an answer must hold a value of a kind a pattern can see (a name, a time, a number)."""
        return self.kind in ("person", "time", "place", "number", "choice")


# Auxiliaries carry no content of their own: "When did SASAC approve ..." asks about approving.
_QUESTION_WORDS = frozenset(content_words("who whom whose when where which what why how many much name list "
                                          "describe explain did does do is are was were has have had be been "
                                          "can could would should will may might shall must"))


def question_form(question: str) -> QuestionForm:
    """The kind of answer ``question`` asks for, its content words and the names it mentions."""
    text = question.strip()
    names = tuple(dict.fromkeys([*(m.strip() for m in _QUOTED.findall(text)), *name_runs(text)]))
    words = frozenset(content_words(text) - _QUESTION_WORDS)
    choices = _choices(text, names)
    parts = 1 + len(_SECOND_PART.findall(text))
    if choices:
        return QuestionForm("choice", words, names, choices, parts)
    counted = _COUNTED.search(text)
    unit = next(iter(content_words(counted.group(1))), "") if counted else ""
    return QuestionForm(_kind(text), words, names, parts=parts, unit=unit)


def _kind(text: str) -> Kind:
    for kind, pattern in _TYPED:
        if pattern.search(text):
            return kind
    head = _HEAD.match(text)
    first = head.group(1).lower() if head else ""
    if (first == "where" and _ORIGIN.search(text)) or (first == "when" and _HABITUAL.match(text)):
        return "description"
    if first in _HEAD_KIND:
        return _HEAD_KIND[first]
    if re.search(r"\bwhom?\s*\??\s*$", text, re.I):
        return "person"  # "... whose teacher was whom?"
    if _LIST.search(text):
        return "list"
    if _DESCRIPTION.search(text):
        return "description"
    if re.search(r"\b(what|which)\b", text, re.I):
        return "entity"
    if re.search(r"\bwhen\b", text, re.I):
        return "time"
    if re.search(r"\bwhere\b", text, re.I):
        return "place"
    return "description"


def _choices(text: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The two options of an "X or Y?" question, when both sides are names (or short phrases after a comma)."""
    parts = _CHOICE.split(text.rstrip(" ?"))
    if len(parts) != 2 or not re.search(r"\b(which|who|what)\b", parts[0], re.I):
        return ()
    left, right = parts
    before = [n for n in names if left.rstrip(" ,").endswith(n)]
    after = [n for n in names if right.lstrip().startswith(n)]
    if before and after:
        return (before[-1], after[0])
    if "," in left:
        option = left.rsplit(",", 1)[1].strip()
        option = re.sub(r"^(the|a|an)\s+", "", option, flags=re.I)
        if 0 < len(option.split()) <= 4 and 0 < len(right.split()) <= 4:
            return (option, re.sub(r"^(the|a|an)\s+", "", right.strip(), flags=re.I))
    return ()


def name_runs(text: str) -> list[str]:
    """Runs of capitalised words ("Lisk Estuary", "Silent Harbour"), the sentence's first word only
    when a capitalised word follows it."""
    runs: list[str] = []
    for match in re.finditer(r"[A-Z][\w'’.-]*(?:\s+(?:of|the|de|von|van|and|&)?\s*[A-Z][\w'’.-]*)*", text):
        run = match.group(0).strip(" .")
        first = text[: match.start()].strip() == "" or text[: match.start()].rstrip()[-1:] in ".!?"
        if first and " " not in run:
            continue
        if first:
            # "The Beatles" keeps its article; "Who founded" loses the question word.
            head, _, rest = run.partition(" ")
            if head.lower() in _LEADING_WORDS:
                run = rest
        if run:
            runs.append(run)
    return runs


_LEADING_WORDS = frozenset(str.split("who whom whose what when where which why how is was are were did does do in on "
                                     "at if a an for from by with as"))


def answer_values(form: QuestionForm, sentence: str) -> list[str]:
    """The values of the asked kind in ``sentence`` that the question does not already name.

    Empty for untyped questions (what/how/why), whose answers no pattern can see.
    """
    asked = question_tokens(form)
    if form.kind == "time":
        found = [m.group(0) for m in _TIME.finditer(sentence)]
    elif form.kind == "number":
        found = [m.group(0) for m in _NUMBER.finditer(sentence)]
    elif form.kind in ("person", "place"):
        # A quoted name is a title (a film, a song, a book), not a person or a place.
        unquoted = _QUOTED.sub(" ", sentence)
        found = name_runs(unquoted)
    elif form.kind == "entity":
        found = [*_QUOTED.findall(sentence), *name_runs(sentence)]
    elif form.kind == "choice":
        lowered = sentence.lower()
        return [c for c in form.choices if c.lower() in lowered]
    else:
        return []
    return [value for value in found if not set(re.findall(r"\w+", value.lower())) - _LINK_WORDS <= asked]


_LINK_WORDS = frozenset({"the", "a", "an", "of", "and", "de", "von", "van"})


def counts_unit(form: QuestionForm, sentence: str) -> bool:
    """Whether ``sentence`` holds a figure of what a "how many" question counts: asked "how many
    times", "two-time" and "three times" count, "nine seasons" does not."""
    if not form.unit:
        return False
    for match in _NUMBER.finditer(sentence):
        if match.group(0).lower().endswith("-time"):
            if form.unit == "time":
                return True
            continue
        # "30 days", "30 working days", "a 30-day period": the unit follows within two words.
        following = re.findall(r"[\w-]+", sentence[match.end():match.end() + 40])[:2]
        if any(form.unit in content_words(w.replace("-", " ")) for w in following):
            return True
    return False


def question_tokens(form: QuestionForm) -> set[str]:
    """The question's words as plain lower-case tokens (not stemmed), names included."""
    tokens = {w for name in form.names for w in re.findall(r"\w+", name.lower())}
    return tokens | set(form.words)
