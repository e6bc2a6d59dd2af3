"""How an ``Answer`` becomes what a client reads: message content, the ``citations`` extension, passages.

The HTTP API and the MCP server hand out the same answers, so both shape them here: a client that
switches from one to the other sees the same text, the same Sources list and the same citations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assistant.answer import Answer, AnswerSentence, AnswerSpan
from assistant.passage import Passage
from assistant.verification import render
from index.index_report import IndexReport

SOURCES_HEADING = "**Sources**"


def completion(reply: Reply, id_: str, created: int) -> dict[str, Any]:
    """A ``chat.completion`` object, with the ``citations`` extension."""
    answer = reply.answer
    content = "".join(content_parts(answer))
    return {
        "id": id_, "object": "chat.completion", "created": created, "model": reply.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": None,
        "citations": citations_extension(reply),
    }


def content_parts(answer: Answer) -> list[str]:
    """The message content in the pieces a stream sends: one per sentence, then the Sources list (or the
    refusal, whole). Joined, the sentences are ``answer.text``."""
    if answer.refused:
        return [refusal_text(answer)]
    return [*(sentence_part(s, n) for n, s in enumerate(answer.sentences)), sources_markdown(answer)]


def sentence_part(sentence: AnswerSentence, position: int) -> str:
    """One sentence as the answer's text renders it, with the space that joins it to the one before."""
    return (" " if position else "") + render([sentence])


def refusal_text(answer: Answer) -> str:
    return f"{answer.text}\n\n_{answer.refusal_reason}_" if answer.refusal_reason else answer.text


def sources_markdown(answer: Answer) -> str:
    """The numbered reference list under the answer, for a chat client that renders Markdown."""
    lines = [f"\n\n{SOURCES_HEADING}\n"]
    for citation in answer.citations:
        chunk = citation.chunk
        bits = [chunk.title or chunk.source, *(b for b in (chunk.publisher, chunk.date) if b)]
        if chunk.page:
            bits.append(f"p. {chunk.page}")
        link = f" <{chunk.url}>" if chunk.url else ""
        quote = " ".join(citation.supporting_text.split())
        quote = quote if len(quote) <= 300 else quote[:297] + "..."
        lines.append(f"- [{citation.n}] {', '.join(bits)} — `{chunk.source}`{link}\n  > {quote}")
    return "\n".join(lines)


def citations_extension(reply: Reply) -> dict[str, Any]:
    """The structured citations: what a client needs to show or check the span behind each [n]."""
    answer = reply.answer
    return {
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "fallback_reason": reply.fallback_reason,
        "query": answer.query,
        "items": [
            {"n": c.n, "source": c.chunk.source, "title": c.chunk.title, "url": c.chunk.url, "page": c.chunk.page,
             "publisher": c.chunk.publisher, "date": c.chunk.date, "heading": c.chunk.heading,
             "chunk_id": c.chunk.id, "quote": c.supporting_text, "start": c.support_start, "end": c.support_end,
             "chunk_start": c.chunk.start, "chunk_end": c.chunk.end}
            for c in answer.citations
        ],
        "sentences": [{"text": s.text, "citations": list(s.citations), "status": s.status}
                      for s in answer.sentences],
        "direct_answer": direct_answer_dict(answer),
    }


def direct_answer_dict(answer: Answer) -> dict[str, Any] | None:
    """The answer's opening statement of the asked-for value, with the offsets of each quoted span."""
    direct = answer.direct_answer
    if direct is None:
        return None
    return {"text": direct.text, "answer": direct.answer, "missing": list(direct.missing),
            "spans": [_span_dict(s) for s in direct.spans], "chain": [_span_dict(s) for s in direct.chain]}


def _span_dict(span: AnswerSpan) -> dict[str, Any]:
    return {"text": span.text, "n": span.n, "start": span.start, "end": span.end}


def passage_dict(p: Passage, rank: int) -> dict[str, Any]:
    chunk = p.chunk
    return {"rank": rank, "score": round(p.score, 5), "relevance": round(p.relevance, 4), "id": chunk.id,
            "source": chunk.source, "title": chunk.title, "heading": chunk.heading, "publisher": chunk.publisher,
            "date": chunk.date, "url": chunk.url, "page": chunk.page, "topics": list(chunk.topics),
            "start": chunk.start, "end": chunk.end, "text": chunk.text}


def report_dict(report: IndexReport) -> dict[str, Any]:
    """What ``chokepoint index --json`` prints, plus its one-line summary."""
    return {**report.as_dict(), "summary": report.summary()}


def without_sources(content: str) -> str:
    """``content`` less the Sources list ``sources_markdown`` put under it."""
    # Clients send our replies back as history; the rewriter needs the answer, not its reference list.
    return content.split(f"\n\n{SOURCES_HEADING}", 1)[0]


@dataclass(frozen=True)
class Reply:
    """A finished answer and how it was reached."""

    answer: Answer
    model: str
    fallback_reason: str = ""
    """Why the extractive answerer answered in place of the LLM (the request allowed it), if it did."""
