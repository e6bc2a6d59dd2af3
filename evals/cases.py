"""Test sets: hand-written JSONL cases, validated on load, and BEIR retrieval sets.

A case file has one JSON object per line::

    {"id": "selfsuff-2020-01", "question": "...", "history": [{"role": "user", "content": "..."}],
     "answerable": true, "reference_answer": "...", "key_facts": ["15.9%"],
     "gold_sources": ["chip-self-sufficiency-figures.md"], "related_sources": ["glossary-of-terms.md"],
     "gold_passages": ["..."], "tags": ["numeric"]}

``history``, ``related_sources`` and ``gold_passages`` are optional; blank lines are skipped. Every problem is
reported with the file name, line number and field ("default.jsonl line 12: field
'answerable' must be true or false"), all of them at once.

Key facts must mean something (``key_fact_problems``): none may already appear in the question, and
a fact of one word must be a name or a figure, not a bare year or month. Our own sets (under
``evals/sets/``) are refused when a fact breaks a rule; an external set only gets a logged warning,
since it is not ours to edit.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError, field_validator, model_validator

from assistant.answer import Turn
from evals.metrics import fact_found

log = logging.getLogger(__name__)

OWN_SETS_DIR = Path(__file__).resolve().parent / "sets"
"""Sets we write and can fix: a key fact that breaks a rule refuses the set. Elsewhere it only warns."""


class CaseFileError(ValueError):
    """A test set that cannot be used; ``problems`` lists every error, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:20]
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__("\n".join(shown) + more)


class HistoryTurn(BaseModel):
    """An earlier message of the conversation the question is asked in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant"]
    content: StrictStr


class EvalCase(BaseModel):
    """One question with what a good answer contains and where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr
    question: StrictStr
    history: tuple[HistoryTurn, ...] = ()
    answerable: StrictBool
    reference_answer: StrictStr
    key_facts: tuple[StrictStr, ...]
    gold_sources: tuple[StrictStr, ...]
    """The notes that answer the question (usually one), as paths relative to the sources dir, as the
    index names them. Retrieval and citation recall are scored against these alone."""
    related_sources: tuple[StrictStr, ...] = ()
    """Other notes that state a key fact in passing without answering the question (a timeline, a
    glossary): citing one is as right as citing a gold note, but retrieving one is no hit."""
    gold_passages: tuple[StrictStr, ...] = ()
    """Text that a retrieved passage should contain (whitespace and case are ignored)."""
    tags: tuple[StrictStr, ...]

    @field_validator("id", "question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("gold_sources", "related_sources")
    @classmethod
    def _relative_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            pure = PurePosixPath(path)
            if not path.strip() or pure.is_absolute() or ".." in pure.parts or "\\" in path:
                raise ValueError(f"must hold paths relative to sources/, not {path!r}")
        return value

    @field_validator("key_facts", "gold_passages", "tags")
    @classmethod
    def _no_blank_items(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not item.strip() for item in value):
            raise ValueError("must not contain empty strings")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EvalCase:
        if self.answerable and not self.gold_sources:
            raise ValueError("gold_sources: an answerable case needs at least one gold source")
        repeated = [s for s in self.related_sources if s in self.gold_sources]
        if repeated:
            raise ValueError(f"related_sources: repeats the gold source {repeated[0]!r}; a note that answers the "
                             "question belongs in gold_sources only, so remove it from related_sources")
        return self

    def turns(self) -> list[Any]:
        """The history as ``assistant.answer.Turn`` objects."""
        return [Turn(t.role, t.content) for t in self.history]


_TYPE_WORDS = {
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}


def _field_path(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def _describe(error: dict[str, Any]) -> str:
    loc = error.get("loc", ())
    kind = error.get("type", "")
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        message = f"must be one of {expected}"
    elif kind in _TYPE_WORDS:
        message = _TYPE_WORDS[kind]
    else:
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        for name in ("gold_sources", "related_sources"):  # raised by the model-level check
            if message.startswith(f"{name}: "):
                return f"field '{name}' {message.removeprefix(f'{name}: ')}"
    if not loc:
        return message
    return f"field '{_field_path(loc)}' {message}"


# Key facts ------------------------------------------------------------------------------------

# Words that carry no claim, so "in 2025" is as bare as "2025".
_FILLER = frozenset({
    "a", "an", "the", "in", "on", "at", "of", "by", "for", "to", "from", "with", "and", "or", "as", "its", "it", "is",
    "was", "were", "be"
})
_YEAR = re.compile(r"(?:1[5-9]|2[01])\d\ds?")  # a year or a decade: 1949, 2025, 2020s
_MONTHS = frozenset({
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december"
})
_NUMBER_WORDS = frozenset({
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty",
    "sixty", "seventy", "eighty", "ninety", "hundred", "thousand", "million", "billion", "trillion", "dozen", "half"
})
_EDGE_PUNCT = "\"'“”‘’.,;:!?()[]"


def key_fact_problems(case: EvalCase) -> list[str]:
    """What is wrong with each key fact of a case, one "field 'key_facts[i]' ..." line each.

    Key facts are matched by containment in the answer (``evals.metrics.fact_found``), so a fact
    the question already holds is scored by an answer that only repeats the question, and a
    common word or a bare year turns up in answers that say nothing right. Hence: no fact may
    appear in the question, and a fact of one word (not counting articles and prepositions) must
    be a figure (a digit or a number word, but not a bare year or month) or a name (a capital
    letter: SMIC, BeiDou, iCLIP).
    """
    problems = []
    for i, fact in enumerate(case.key_facts):
        where = f"field 'key_facts[{i}]' {fact!r}"
        if fact_found(fact, case.question):
            problems.append(f"{where} already appears in the question, so an answer that only repeats the "
                            "question scores it: name what the answer must add (a figure with its unit, a name, "
                            "the claim as a note states it), or drop the fact")
            continue
        words = [w.strip(_EDGE_PUNCT) for w in fact.split()]
        content = [w for w in words if w and w.lower() not in _FILLER]
        if len(content) > 1:
            continue
        if not content:
            problems.append(f"{where} holds only articles and prepositions: write the figure or name the answer "
                            "must give, or drop the fact")
            continue
        word = content[0]
        if _YEAR.fullmatch(word) or word.lower() in _MONTHS:
            problems.append(f"{where} is a bare year or date word, which turns up in answers about anything "
                            "else that happened then: state what the answer must say about it as a note in "
                            "sources/ words it (e.g. 'set up in September 2014'), or drop the fact")
        elif not (any(c.isdigit() or c.isupper() for c in word) or word.lower() in _NUMBER_WORDS):
            problems.append(f"{where} is a single common word, which turns up in answers that say nothing "
                            "right: a one-word key fact must be a name or a figure; write the claim as a short "
                            "phrase a note in sources/ states (e.g. 'sense touch and pressure'), or drop the fact")
    return problems


def is_own_set(path: Path) -> bool:
    """Whether a case file is one of ours (under ``evals/sets/``), whose key-fact problems refuse it."""
    return path.resolve().is_relative_to(OWN_SETS_DIR)


def parse_case(obj: Any) -> EvalCase:
    """Validate one decoded JSON value (raises ``pydantic.ValidationError``)."""
    return EvalCase.model_validate(obj)


def load_cases(path: str | Path, *, strict_key_facts: bool | None = None) -> list[EvalCase]:
    """All cases of a JSONL file, or ``CaseFileError`` listing every bad line and field.

    A key fact that breaks the rules of ``key_fact_problems`` refuses the file when
    ``strict_key_facts`` is true, and is logged as a warning when it is false; by default the
    rules refuse our own sets (``is_own_set``) and warn about any other.
    """
    path = Path(path)
    strict = is_own_set(path) if strict_key_facts is None else strict_key_facts
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CaseFileError([f"{path}: no such test set"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError([f"{path}: cannot read the file ({exc})"]) from exc
    name = path.name
    problems: list[str] = []
    warnings: list[str] = []
    cases: list[EvalCase] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{where}: must be a JSON object, not {type(obj).__name__}")
            continue
        try:
            case = parse_case(obj)
        except ValidationError as exc:
            problems.extend(f"{where}: {_describe(error)}" for error in exc.errors())
            continue
        if case.id in seen:
            problems.append(f"{where}: field 'id' {case.id!r} repeats the id of line {seen[case.id]}")
            continue
        seen[case.id] = number
        cases.append(case)
        (problems if strict else warnings).extend(f"{where}: {p}" for p in key_fact_problems(case))
    if not problems and not cases:
        problems.append(f"{name}: no cases (the file is empty)")
    if problems:
        raise CaseFileError(problems)
    if warnings:
        shown = "\n".join(f"  {w}" for w in warnings[:10])
        more = f"\n  ... and {len(warnings) - 10} more" if len(warnings) > 10 else ""
        log.warning("%s: %d key facts break the key-fact rules; not refused, since %s is not one of the sets "
                    "under evals/sets/:\n%s%s", path, len(warnings), name, shown, more)
    return cases


def missing_sources(cases: Iterable[EvalCase], sources_dir: Path) -> dict[str, list[str]]:
    """Gold and related sources that are not files under ``sources_dir``: {case id: [paths]}."""
    out: dict[str, list[str]] = {}
    for case in cases:
        missing = [s for s in (*case.gold_sources, *case.related_sources) if not (sources_dir / s).is_file()]
        if missing:
            out[case.id] = missing
    return out


# BEIR -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeirDoc:
    id: str
    title: str
    text: str


@dataclass
class BeirSet:
    """A BEIR retrieval set: corpus, the queries that have judgements, and the judgements."""

    name: str
    folder: Path
    corpus: list[BeirDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    split: str = "test"


def _jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CaseFileError([f"{path.name} line {number}: not valid JSON ({exc.msg})"]) from exc
            if not isinstance(obj, dict) or "_id" not in obj:
                raise CaseFileError([f"{path.name} line {number}: field '_id' is required"])
            yield number, obj


def load_beir(folder: str | Path, split: str = "test") -> BeirSet:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from a BEIR folder.

    Only queries with at least one positive judgement are kept (BEIR's own convention).
    """
    folder = Path(folder)
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_path = folder / "qrels" / f"{split}.tsv"
    missing = [p.name if p.parent == folder else f"qrels/{p.name}"
               for p in (corpus_path, queries_path, qrels_path) if not p.is_file()]
    if missing:
        raise CaseFileError([f"{folder}: not a BEIR folder (missing {', '.join(missing)})"])
    corpus: list[BeirDoc] = []
    for number, obj in _jsonl(corpus_path):
        text = obj.get("text", "")
        title = obj.get("title", "") or ""
        if not isinstance(text, str) or not isinstance(title, str):
            raise CaseFileError([f"corpus.jsonl line {number}: fields 'title' and 'text' must be strings"])
        corpus.append(BeirDoc(str(obj["_id"]), title.strip(), text.strip()))
    all_queries = {str(obj["_id"]): str(obj.get("text", "")) for _, obj in _jsonl(queries_path)}
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise CaseFileError([f"qrels/{qrels_path.name} line {number}: expected query-id, corpus-id, score"])
            try:
                score = int(float(row[2]))
            except ValueError:
                problem = f"qrels/{qrels_path.name} line {number}: field 'score' must be a number"
                raise CaseFileError([problem]) from None
            qrels.setdefault(row[0], {})[row[1]] = score
    queries = {q: all_queries[q] for q in qrels if q in all_queries and any(s > 0 for s in qrels[q].values())}
    unknown = [q for q in qrels if q not in all_queries]
    if unknown:
        raise CaseFileError([f"qrels/{qrels_path.name}: {len(unknown)} judged queries are not in queries.jsonl "
                             f"(first: {unknown[0]})"])
    return BeirSet(folder.resolve().name, folder, corpus, queries, {q: qrels[q] for q in queries}, split)
