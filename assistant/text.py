"""Small text tools shared by the answerers and the verifier: citation markers, numbers, years.

Their words (stems, stop words) come from ``index.words``, as BM25's do.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
# Numbers that add nothing to check: list ordinals and the like are filtered by length below.
_NUMBER_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "dozen": "12", "twenty": "20", "hundred": "100"}


def numbers(text: str) -> set[str]:
    """Numbers written in the text, normalised ("1,334" -> "1334", "15.90" -> "15.9")."""
    found = set()
    for raw in _NUMBER.findall(_MARKER.sub(" ", text)):
        value = raw.replace(",", "")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        found.add(value)
    return found


def spelled_numbers(text: str) -> set[str]:
    """Numbers written as words ("five countries"), for matching against digits in a passage."""
    return {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS}


def citation_markers(text: str) -> tuple[str, tuple[int, ...]]:
    """Split "Claim text [1][3]." into ("Claim text.", (1, 3))."""
    cited: list[int] = []
    for match in _MARKER.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            n = int(part.strip())
            if n not in cited:
                cited.append(n)
    clean = _MARKER.sub("", text)
    clean = re.sub(r"\s+([.,;:!?])", r"\1", clean).strip()
    return clean, tuple(cited)


_ENTITY = re.compile(r"(?<![\w-])([A-Za-z]*\d[\w.-]*|[A-Z][\w-]*)")
_YEAR = re.compile(r"(?<!\d)(19\d\d|20\d\d)(?!\d)")


def distinctive_terms(question: str) -> list[str]:
    """Names and figures in a question: capitalised words (not the first), and anything with a digit."""
    terms = []
    for match in _ENTITY.finditer(question):
        word = match.group(1).strip(".-")
        first = question[: match.start()].strip() == ""
        if word and (any(ch.isdigit() for ch in word) or not first):
            terms.append(word)
    return terms


def years(text: str) -> set[str]:
    return set(_YEAR.findall(text))
