"""Chokepoint as an MCP server: the tools ``search`` and ``ask`` and the resource ``chokepoint://status``.

    agent (Claude Desktop, an IDE, RAGFlow) -> MCP (stdio or Streamable HTTP) -> this server -> Engine

``chokepoint mcp`` serves it over stdio, for clients that launch their tools; ``chokepoint serve`` mounts
it at ``/mcp`` beside the OpenAI-compatible API, behind the same token and over the same ``Engine``.
An ``ask`` returns what the HTTP API returns: the verified answer with ``[n]`` markers and its Sources
list as text, and the structured citations (the HTTP API's ``citations.items``) as structured content.

Needs the ``mcp`` extra (``pip install -e '.[mcp]'``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from assistant.engine import Engine
from assistant.llm.faults import LLMError, describe
from assistant.pipeline import AskOptions
from index.filters import Filters
from service.replies import Reply, citations_extension, passage_dict, refusal_text, sources_markdown
from service.schemas import FilterFields, field_path

STATUS_URI = "chokepoint://status"

INSTRUCTIONS = (
    "Chokepoint answers questions from an indexed collection of documents and cites the passage behind "
    "every claim. Use `ask` for a verified answer with citations [n] (it refuses when the sources do not "
    "say); use `search` to read the best-matching passages yourself. Read chokepoint://status for what is "
    "indexed."
)


class Passage(TypedDict):
    rank: int
    score: float
    relevance: float
    id: str
    source: str
    title: str
    heading: str
    publisher: str
    date: str
    url: str
    page: int | None
    topics: list[str]
    start: int
    end: int
    text: str


class SearchResult(TypedDict):
    query: str
    seconds: float
    passages: list[Passage]


class Citation(TypedDict):
    n: int
    source: str
    title: str
    url: str
    page: int | None
    publisher: str
    date: str
    heading: str
    chunk_id: str
    quote: str
    start: int
    end: int
    chunk_start: int
    chunk_end: int


class Sentence(TypedDict):
    text: str
    citations: list[int]
    status: str


class DirectSpan(TypedDict):
    text: str
    n: int
    start: int
    end: int


class DirectAnswerResult(TypedDict):
    text: str
    answer: str
    missing: list[str]
    spans: list[DirectSpan]
    chain: list[DirectSpan]


class AskResult(TypedDict):
    answer: str
    refused: bool
    refusal_reason: str
    answerer: str
    query: str
    citations: list[Citation]
    sentences: list[Sentence]
    direct_answer: DirectAnswerResult | None


# The filter arguments of both tools; lists because clients build them from JSON schemas.
Sources = Annotated[list[str] | None, Field(description="only these source files (names as in search results)")]
Publishers = Annotated[list[str] | None, Field(description="only these publishers")]
Topics = Annotated[list[str] | None, Field(description="only these topics")]
DateFrom = Annotated[str | None, Field(description="earliest document date, YYYY[-MM[-DD]]")]
DateTo = Annotated[str | None, Field(description="latest document date, YYYY[-MM[-DD]]")]
K = Annotated[int | None, Field(description="number of passages (default CHOKEPOINT_TOP_K)")]


def create_server(engine: Engine) -> MCPServer:
    """The MCP server over ``engine``; tools run in worker threads, so one slow answer holds up no other."""
    settings = engine.settings
    # WARNING: the SDK logs every tool call at INFO, which would fill a desktop client's log.
    server: MCPServer = MCPServer("chokepoint", title="Chokepoint", instructions=INSTRUCTIONS, log_level="WARNING")

    def checked(text: str, name: str, k: int | None, **filters: Any) -> Filters:
        if not text.strip():
            raise ToolError(f"Argument '{name}' is empty: send the text to look for.")
        if len(text) > settings.max_question_chars:
            raise ToolError(f"Argument '{name}' is {len(text)} characters long; the limit is "
                            f"{settings.max_question_chars} (CHOKEPOINT_MAX_QUESTION_CHARS). Send a shorter one.")
        if k is not None and not 1 <= k <= settings.max_passages:
            raise ToolError(f"Argument 'k': {k} passages asked for; between 1 and {settings.max_passages} are "
                            "allowed (CHOKEPOINT_MAX_PASSAGES).")
        try:
            fields = FilterFields.model_validate({key: value for key, value in filters.items() if value is not None})
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise ToolError(f"Argument '{field_path(first['loc'])}': {first['msg']}.") from None
        return fields.filters()

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def search(query: Annotated[str, Field(description="what to look for")], k: K = None,
               source: Sources = None, publisher: Publishers = None, topic: Topics = None,
               date_from: DateFrom = None, date_to: DateTo = None) -> SearchResult:
        """The indexed passages that best match the query (hybrid dense + BM25), with their source, title,
        score, text and character span in the source. Unverified: use `ask` for a cited answer."""
        filters = checked(query, "query", k, source=source, publisher=publisher, topic=topic,
                          date_from=date_from, date_to=date_to)
        result = engine.retriever.retrieve(query, k, filters)
        return {"query": query, "seconds": round(result.seconds, 4),
                "passages": [passage_dict(p, rank) for rank, p in enumerate(result.passages, start=1)]}  # type: ignore[misc]

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def ask(question: Annotated[str, Field(description="the question, in full (no earlier turns are kept)")],
            answerer: Annotated[Literal["extractive", "llm"], Field(
                description="extractive (fast, quotes the sources) or llm (writes the answer; slow on a CPU)")
            ] = "extractive",
            k: K = None, source: Sources = None, publisher: Publishers = None, topic: Topics = None,
            date_from: DateFrom = None, date_to: DateTo = None) -> Annotated[CallToolResult, AskResult]:
        """A verified answer to the question from the indexed sources: text with [n] markers and a Sources
        list, and the citations (source, title, url, page, the quoted span and its character offsets).
        `refused` is true, with `refusal_reason`, when the sources do not answer it."""
        filters = checked(question, "question", k, source=source, publisher=publisher, topic=topic,
                          date_from=date_from, date_to=date_to)
        try:
            chosen = engine.answerer(answerer)
            answer = engine.pipeline.ask(chosen, question, (), AskOptions(k=k, filters=filters))
        except LLMError as exc:
            raise ToolError(f"{exc} Call ask again with answerer 'extractive' for the extractive answer.") from exc
        except ValueError as exc:  # the pipeline's own limits
            raise ToolError(str(exc)) from exc
        except Exception as exc:
            if answerer != "llm":
                raise
            raise ToolError(f"The LLM could not be started: {describe(exc, settings)} Call ask again with "
                            "answerer 'extractive'.") from exc
        extension = citations_extension(Reply(answer, f"chokepoint-{answerer}"))
        text = refusal_text(answer) if answer.refused else f"{answer.text}{sources_markdown(answer)}"
        structured: AskResult = {
            "answer": answer.text, "refused": answer.refused, "refusal_reason": answer.refusal_reason,
            "answerer": answerer, "query": answer.query, "citations": extension["items"],
            "sentences": extension["sentences"], "direct_answer": extension["direct_answer"],
        }
        return CallToolResult(content=[TextContent(type="text", text=text)],
                              structured_content=dict(structured))

    @server.resource(STATUS_URI, name="status", title="Index status", mime_type="application/json",
                     description="What `chokepoint status --json` prints: sources, chunks, model, last indexed.")
    def status() -> str:
        return json.dumps(engine.status().as_dict(), indent=2)

    return server
