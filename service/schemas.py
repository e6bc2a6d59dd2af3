"""The request bodies the API accepts, and the OpenAI-style error every refusal of one returns.

Bodies are parsed strictly from JSON (``"k": "5"`` is an error, not 5): a client that sends the wrong
type learns which field is wrong instead of getting an answer to a question it did not ask.
Fields OpenAI clients send that mean nothing here (temperature, max_tokens, ...) are ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from index.filters import Filters

M = TypeVar("M", bound="BaseModel")
_TYPE_TAG = re.compile(r"^(function-\w+\[.*\]|list\[.*\]|str|int|bool|float|none)$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


class ApiError(Exception):
    """A request the API refuses: the HTTP status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 type_: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type_
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _one_or_many(value: Any) -> Any:
    # Open WebUI and curl users write "source": "a.md"; LangChain code passes lists.
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_one_or_many)]


class FilterFields(BaseModel):
    """Filters and ``k``: extra body fields on /v1/chat/completions and /v1/search."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    k: int | None = None
    source: Names = Field(default_factory=list)
    publisher: Names = Field(default_factory=list)
    topic: Names = Field(default_factory=list)
    date_from: str | None = None
    date_to: str | None = None

    @field_validator("date_from", "date_to")
    @classmethod
    def _date(cls, value: str | None) -> str | None:
        if value and not _DATE.match(value):
            raise ValueError("use YYYY, YYYY-MM or YYYY-MM-DD")
        return value or None

    def filters(self) -> Filters:
        return Filters(sources=tuple(self.source), publishers=tuple(self.publisher), topics=tuple(self.topic),
                       date_from=self.date_from or "", date_to=self.date_to or "")


def _text_of(content: Any) -> Any:
    """A message's text: a string, or the text parts of a list of content parts (images are not read)."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or "type" not in part:
                raise ValueError("each content part must be an object with a 'type'")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise ValueError("a text content part needs 'text' as a string")
                texts.append(part["text"])
        return "\n".join(texts)
    raise ValueError("content must be a string or a list of content parts")


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Annotated[str, BeforeValidator(_text_of)] = ""


class ChatRequest(FilterFields):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    fallback: Literal["extractive"] | None = None
    """What to do when the LLM fails: nothing (502), or answer with the extractive answerer."""
    include_answer: bool = False
    """Add ``answer``: the whole answer as ``chokepoint ask --json`` prints it (the CLI asks for it)."""


class SearchRequest(FilterFields):
    query: str = Field(min_length=1)


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    rebuild: bool = False


def parse(model: type[M], raw: bytes) -> M:
    """``raw`` as a ``model``, or an ``ApiError`` (400) that names the first bad field."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, f"The request body is not valid JSON ({first['msg']}). Send a JSON object.") from None
        param = field_path(first["loc"])
        got = "" if first["type"] == "missing" else f" (got {_short(first.get('input'))})"
        raise ApiError(400, f"Field '{param}': {first['msg']}{got}. Fix that field and send the request again.",
                       param=param, code="invalid_field") from None


def field_path(loc: tuple[int | str, ...]) -> str:
    """('messages', 0, 'content') -> 'messages[0].content'; validator names in the path are dropped."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _TYPE_TAG.match(part):
            continue
        else:
            path += f".{part}" if path else part
    return path or "body"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
