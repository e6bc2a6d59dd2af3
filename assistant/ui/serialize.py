"""An ``Answer`` to a JSON-ready dict and back, so saved chats show their citation cards again."""

from __future__ import annotations

import dataclasses
from typing import Any

from assistant.answer import Answer, AnswerSentence, AnswerSpan, Citation, DirectAnswer, HopStep, Timings
from assistant.passage import Passage
from index.attribution import Attribution, Report
from index.chunk import Chunk

VERSION = 1


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    data = dataclasses.asdict(answer)
    data["v"] = VERSION
    return data


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Only the fields ``cls`` has now (a stored record may be older or newer than the code)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _chunk(data: dict[str, Any]) -> Chunk:
    fields = _known(Chunk, data)
    fields["topics"] = tuple(fields.get("topics") or ())
    fields["attributions"] = tuple(Attribution(a["start"], a["end"], tuple(Report(**r) for r in a["reports"]))
                                   for a in fields.get("attributions") or ())
    return Chunk(**fields)


def _passage(data: dict[str, Any]) -> Passage:
    fields = _known(Passage, data)
    fields["chunk"] = _chunk(data["chunk"])
    return Passage(**fields)


def _sentence(data: dict[str, Any]) -> AnswerSentence:
    fields = _known(AnswerSentence, data)
    fields["citations"] = tuple(fields.get("citations") or ())
    fields["original_citations"] = tuple(fields.get("original_citations") or ())
    return AnswerSentence(**fields)


def answer_from_dict(data: dict[str, Any]) -> Answer:
    fields = _known(Answer, data)
    fields["passages"] = tuple(_passage(p) for p in data.get("passages") or ())
    fields["sentences"] = tuple(_sentence(s) for s in data.get("sentences") or ())
    fields["dropped"] = tuple(_sentence(s) for s in data.get("dropped") or ())
    fields["citations"] = tuple(
        Citation(**{**_known(Citation, c), "passage": _passage(c["passage"]),
                    "spans": tuple(tuple(s) for s in c.get("spans") or ())})
        for c in data.get("citations") or ()
    )
    fields["timings"] = Timings(**_known(Timings, data.get("timings") or {}))
    fields["hop_steps"] = tuple(HopStep(**_known(HopStep, s)) for s in data.get("hop_steps") or ())
    fields["direct_answer"] = _direct(data["direct_answer"]) if data.get("direct_answer") else None
    return Answer(**fields)


def _direct(data: dict[str, Any]) -> DirectAnswer:
    fields = _known(DirectAnswer, data)
    fields["spans"] = tuple(AnswerSpan(**_known(AnswerSpan, s)) for s in data.get("spans") or ())
    fields["missing"] = tuple(fields.get("missing") or ())
    fields["chain"] = tuple(AnswerSpan(**_known(AnswerSpan, s)) for s in data.get("chain") or ())
    return DirectAnswer(**fields)
