"""The chat as the page keeps it: message dicts read back from the chat store, and the turns a follow-up sees."""

from __future__ import annotations

import contextlib
from typing import Any

from assistant.answer import Turn
from assistant.ui.chats import StoredMessage
from assistant.ui.serialize import answer_from_dict


def message_from_stored(stored: StoredMessage) -> dict[str, Any]:
    """A stored message as the page shows it; an answer record the code can no longer read shows as text."""
    answer = None
    if stored.answer:
        with contextlib.suppress(Exception):
            answer = answer_from_dict(stored.answer)
    return {"id": stored.id, "role": stored.role, "content": stored.content, "answer": answer}


def history_turns(messages: list[dict[str, Any]]) -> list[Turn]:
    """The conversation so far, for follow-ups (failed attempts left out)."""
    turns = []
    for message in messages:
        if message.get("error"):
            continue
        if message["role"] == "assistant":
            answer = message.get("answer")
            turns.append(Turn("assistant", answer.text if answer else message["content"]))
        else:
            turns.append(Turn("user", message["content"]))
    return turns
