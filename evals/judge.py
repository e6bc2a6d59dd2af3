"""Does a passage support a sentence? What every judge of the faithfulness and citation metrics shares.

Deliberately not ``assistant.verification``: the answerer's own verifier chose the citations,
so scoring with it would only check it against itself. Nor the verifier's kind of test: asking
whether the passage holds the sentence's words and numbers passes a sentence that keeps them but
swaps a name, moves a figure to another subject or drops a "not". The default judge,
``AlignmentJudge`` (``evals.alignment_judge``), asks whether one passage sentence (or a run of
adjacent ones) states the sentence's *content*.

``agreement`` measures a judge against hand labels (``sets/judge_labels.jsonl``); every QA run
records the figure. ``LLMJudge`` (``evals.llm_judge``, ``chokepoint eval --judge llm``) is the model
the answerer uses, so it may grade a sample for a note but is never the gate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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
STOP_WORDS = frozenset(_STOP_WORDS.split())

CITATION_MARKER = re.compile(r"\s*\[(?:\d+(?:\s*[,;]\s*\d+)*|unsupported)\]")
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
    text = CITATION_MARKER.sub(" ", text.lower())
    return {stem(w) for w in _WORD.findall(text) if w not in STOP_WORDS and len(w) > 1}


def numbers(text: str) -> set[str]:
    """Numbers of a text, normalised: '1,334' -> '1334', '15.90' -> '15.9'."""
    found = set()
    for raw in _NUMBER.findall(CITATION_MARKER.sub(" ", text)):
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

