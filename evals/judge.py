"""Does a passage support a sentence? An independent judge for the faithfulness and citation metrics.

Deliberately not ``assistant.verification``: the answerer's own verifier chose the citations,
so scoring with it would only check it against itself. The default judge is plain and lexical:

    a passage supports a sentence when it contains every number of the sentence, and at least
    60% of the sentence's content words (lower-cased, stop words removed, light suffix stemming).

``LLMJudge`` asks a chat model instead (``chokepoint eval --judge llm``); it is slower and only
as good as the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

WORD_SHARE = 0.60

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


@dataclass(frozen=True)
class Judgement:
    supported: bool
    word_share: float
    missing_numbers: tuple[str, ...]
    reason: str = ""


class Judge(Protocol):
    name: str

    def judge(self, sentence: str, passage: str) -> Judgement: ...


class LexicalJudge:
    """The default: numbers all present, and >= 60% of the content words."""

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


def passage_text(citation: dict[str, Any]) -> str:
    """What the judge reads for a cited passage: its title and heading (context the answerer saw) and text."""
    return "\n".join(part for part in (citation.get("title", ""), citation.get("heading", ""),
                                       citation.get("text", "")) if part)
