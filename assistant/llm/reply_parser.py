"""The reader's reply, read as it streams: the JSON object the reader (``assistant.llm.reader``) asks for.

:class:`ReplyParser` hands on the ``answer`` string's characters as they arrive, so the first thing a
user sees is answer text, not JSON; it reads any key order, and raises :class:`MalformedReply` at the
first character that cannot begin or continue a JSON object (an endpoint that ignored the schema is
known at once, not after the whole reply).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any


class MalformedReply(ValueError):
    """The reply is not the JSON object the schema asks for: the endpoint ignored ``response_format``."""


class _State(Enum):
    START = auto()
    KEY_OR_END = auto()
    KEY_START = auto()
    KEY = auto()
    COLON = auto()
    VALUE = auto()
    ANSWER = auto()
    RAW = auto()
    AFTER_VALUE = auto()
    DONE = auto()


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WHITESPACE = " \t\r\n"


class _StringDecoder:
    """Decodes the body of one JSON string a character at a time (escapes, surrogate pairs)."""

    def __init__(self) -> None:
        self._escape = False
        self._hex: str | None = None
        self._high: int | None = None

    def push(self, ch: str) -> tuple[str, bool]:
        """The decoded text ``ch`` completes, and whether it closed the string."""
        if self._hex is not None:
            if ch not in "0123456789abcdefABCDEF":
                raise MalformedReply(f"bad \\u escape near {ch!r}")
            self._hex += ch
            if len(self._hex) < 4:
                return "", False
            code, self._hex = int(self._hex, 16), None
            if 0xD800 <= code < 0xDC00:  # a high surrogate: its low half follows as its own \u escape
                earlier = self._lone_high()
                self._high = code
                return earlier, False
            if 0xDC00 <= code < 0xE000:
                if self._high is None:
                    return "\ufffd", False
                high, self._high = self._high, None
                return chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)), False
            return self._lone_high() + chr(code), False
        if self._escape:
            self._escape = False
            if ch == "u":
                self._hex = ""
                return "", False
            if ch not in _ESCAPES:
                raise MalformedReply(f"bad escape \\{ch}")
            return self._lone_high() + _ESCAPES[ch], False
        if ch == "\\":
            self._escape = True
            return "", False
        if ch == '"':
            return self._lone_high(), True
        return self._lone_high() + ch, False

    def _lone_high(self) -> str:
        """A high surrogate with no low half after it cannot be shown: the replacement character is."""
        if self._high is None:
            return ""
        self._high = None
        return "\ufffd"


class ReplyParser:
    """Parses the reply object as it streams; :meth:`feed` returns the ``answer`` text each piece adds.

    Any key order is read, unknown keys are skipped, and other values are parsed whole with ``json``.
    Anything that cannot begin or continue a JSON object raises :class:`MalformedReply` at once, so a
    reply that ignored the schema is known from its first character, not after the whole reply.
    """

    def __init__(self) -> None:
        self._state = _State.START
        self._key = ""
        self._key_decoder = _StringDecoder()
        self._answer_decoder = _StringDecoder()
        self._raw: list[str] = []
        self._raw_depth = 0
        self._raw_string = False
        self._raw_escape = False
        self._answer: list[str] = []
        self._answer_seen = False
        self.fields: dict[str, Any] = {}
        self.read = 0
        """Characters fed so far (for messages)."""

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def answerable(self) -> bool | None:
        """The reply's verdict once read (None until then, or when it is not a boolean)."""
        value = self.fields.get("answerable")
        return value if isinstance(value, bool) else None

    @property
    def answer_so_far(self) -> str:
        return "".join(self._answer)

    def feed(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            try:
                self._step(ch, out)
            except MalformedReply as exc:
                raise MalformedReply(f"{exc} at character {self.read + 1}") from None
            self.read += 1
        return "".join(out)

    def _step(self, ch: str, out: list[str]) -> None:
        state = self._state
        if state is _State.ANSWER:
            text, closed = self._answer_decoder.push(ch)
            if text:
                self._answer.append(text)
                out.append(text)
            if closed:
                self.fields["answer"] = "".join(self._answer)
                self._state = _State.AFTER_VALUE
            return
        if state is _State.KEY:
            text, closed = self._key_decoder.push(ch)
            self._key += text
            if closed:
                self._state = _State.COLON
            return
        if state is _State.RAW:
            self._raw_step(ch, out)
            return
        if ch in _WHITESPACE:
            return
        if state is _State.START:
            self._expect(ch, "{", _State.KEY_OR_END)
        elif state is _State.KEY_OR_END and ch == "}":
            self._state = _State.DONE
        elif state in (_State.KEY_OR_END, _State.KEY_START):
            self._expect(ch, '"', _State.KEY)
            self._key, self._key_decoder = "", _StringDecoder()
        elif state is _State.COLON:
            self._expect(ch, ":", _State.VALUE)
        elif state is _State.VALUE:
            if self._key == "answer" and not self._answer_seen and ch == '"':
                self._answer_seen = True
                self._state = _State.ANSWER
            else:
                self._raw, self._raw_depth, self._raw_string, self._raw_escape = [], 0, False, False
                self._state = _State.RAW
                self._raw_step(ch, out)
        elif state is _State.AFTER_VALUE:
            if ch == ",":
                self._state = _State.KEY_START
            else:
                self._expect(ch, "}", _State.DONE)
        else:  # DONE
            raise MalformedReply(f"text after the JSON object ({ch!r})")

    def _expect(self, ch: str, wanted: str, then: _State) -> None:
        if ch != wanted:
            raise MalformedReply(f"expected {wanted!r}, got {ch!r}")
        self._state = then

    def _raw_step(self, ch: str, out: list[str]) -> None:
        """Collect a value other than the answer text until it ends, then parse it whole."""
        if self._raw_string:
            self._raw.append(ch)
            if self._raw_escape:
                self._raw_escape = False
            elif ch == "\\":
                self._raw_escape = True
            elif ch == '"':
                self._raw_string = False
                if self._raw_depth == 0:
                    self._close_raw()
            return
        if self._raw_depth == 0 and self._raw and ch in _WHITESPACE + ",}":
            self._close_raw()  # a number, true, false or null ended: read ch as what follows it
            self._step(ch, out)
            return
        self._raw.append(ch)
        if ch == '"':
            self._raw_string = True
        elif ch in "[{":
            self._raw_depth += 1
        elif ch in "]}":
            self._raw_depth -= 1
            if self._raw_depth < 0:
                raise MalformedReply(f"unbalanced {ch!r}")
            if self._raw_depth == 0:
                self._close_raw()

    def _close_raw(self) -> None:
        raw = "".join(self._raw)
        try:
            value = json.loads(raw)
        except ValueError:
            raise MalformedReply(f"the value of {self._key!r} is not JSON ({raw[:40]!r})") from None
        self.fields[self._key] = value
        self._state = _State.AFTER_VALUE

    def result(self) -> Reply:
        """The whole reply; MalformedReply when it is unfinished or lacks an answer string."""
        if not self.done:
            raise MalformedReply(f"the JSON object is unfinished after {self.read} characters")
        return self.partial()

    def partial(self) -> Reply:
        """What has been read so far, as a reply (for a reply cut short after its answer text)."""
        answer = self.fields.get("answer", self.answer_so_far if self._answer_seen else None)
        if not isinstance(answer, str):
            raise MalformedReply("the reply has no \"answer\" string")
        answerable = self.answerable
        return Reply(answerable=bool(answer.strip()) if answerable is None else answerable,
                     answer=answer, support=_sentence_ids(self.fields.get("support")))


def _sentence_ids(value: object) -> tuple[int, ...]:
    """Sentence ids as integers; an endpoint without the schema may write ``"S3"`` or ``"3"``."""
    if not isinstance(value, list):
        return ()
    ids: list[int] = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            ids.append(item)
        elif isinstance(item, str) and (match := re.fullmatch(r"\s*S?(\d+)\s*", item, re.I)):
            ids.append(int(match.group(1)))
    return tuple(dict.fromkeys(ids))


@dataclass(frozen=True)
class Reply:
    """A parsed reply."""

    answerable: bool
    answer: str
    support: tuple[int, ...]
    """Sentence ids (``S3`` is 3), as the model gave them."""
