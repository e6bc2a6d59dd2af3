"""Conversations and feedback, kept in SQLite (``<data_dir>/chats.sqlite3``).

Feedback rows keep a copy of the question, the conversation before it and the answer, so a
chat can be deleted without losing the test cases its feedback became. ``export_jsonl`` writes
them in the evaluation set format (one JSON object per line).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.ui.render import strip_markers

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    answer TEXT,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_chat ON messages(chat_id, id);
CREATE TABLE IF NOT EXISTS feedback (
    message_id INTEGER PRIMARY KEY,
    chat_id INTEGER,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    answerable INTEGER NOT NULL DEFAULT 1,
    question TEXT NOT NULL,
    history TEXT NOT NULL,
    answer TEXT NOT NULL,
    refused INTEGER NOT NULL,
    sources TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ChatSummary:
    id: int
    title: str
    created: str
    updated: str
    messages: int


@dataclass(frozen=True)
class StoredMessage:
    id: int
    chat_id: int
    role: str
    content: str
    answer: dict[str, Any] | None
    created: str


@dataclass(frozen=True)
class Feedback:
    message_id: int
    chat_id: int | None
    rating: str
    comment: str
    answerable: bool
    question: str
    history: list[dict[str, str]]
    answer: str
    refused: bool
    sources: list[str]
    created: str
    updated: str

    def as_test_case(self) -> dict[str, Any]:
        """The feedback as an evaluation test case (the ``evals/sets/*.jsonl`` format)."""
        up = self.rating == "up"
        # Thumbs up on a refusal says refusing was right: an unanswerable case.
        answerable = (not self.refused) if up else self.answerable
        return {
            "id": f"feedback-{self.message_id}",
            "question": self.question,
            "history": self.history,
            "answerable": answerable,
            "reference_answer": strip_markers(self.answer) if up and not self.refused else "",
            "key_facts": [],
            "gold_sources": list(self.sources) if up and not self.refused else [],
            "tags": ["feedback", self.rating],
            "comment": self.comment,
        }


class ChatStore:
    """Chats, their messages and feedback on answers. Opens a connection per call (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            with db:  # one transaction, committed on success
                yield db

    # Chats

    def create_chat(self, title: str) -> int:
        title = " ".join(title.split())[:80] or "New chat"
        now = _now()
        with self._db() as db:
            cursor = db.execute("INSERT INTO chats (title, created, updated) VALUES (?, ?, ?)", (title, now, now))
            return int(cursor.lastrowid)

    def list_chats(self) -> list[ChatSummary]:
        """Chats, most recently used first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT c.id, c.title, c.created, c.updated, COUNT(m.id) AS n FROM chats c "
                "LEFT JOIN messages m ON m.chat_id = c.id GROUP BY c.id ORDER BY c.updated DESC, c.id DESC"
            ).fetchall()
        return [ChatSummary(r["id"], r["title"], r["created"], r["updated"], r["n"]) for r in rows]

    def get_chat(self, chat_id: int) -> ChatSummary | None:
        return next((c for c in self.list_chats() if c.id == chat_id), None)

    def rename_chat(self, chat_id: int, title: str) -> None:
        with self._db() as db:
            db.execute("UPDATE chats SET title = ? WHERE id = ?", (" ".join(title.split())[:80], chat_id))

    def delete_chat(self, chat_id: int) -> None:
        """The chat and its messages; feedback given in it stays (it is a test case by now)."""
        with self._db() as db:
            db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))

    # Messages

    def add_message(self, chat_id: int, role: str, content: str, answer: dict[str, Any] | None = None) -> int:
        now = _now()
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO messages (chat_id, role, content, answer, created) VALUES (?, ?, ?, ?, ?)",
                (chat_id, role, content, json.dumps(answer) if answer is not None else None, now),
            )
            db.execute("UPDATE chats SET updated = ? WHERE id = ?", (now, chat_id))
            return int(cursor.lastrowid)

    def messages(self, chat_id: int) -> list[StoredMessage]:
        with self._db() as db:
            rows = db.execute(
                "SELECT id, chat_id, role, content, answer, created FROM messages WHERE chat_id = ? ORDER BY id",
                (chat_id,),
            ).fetchall()
        return [
            StoredMessage(r["id"], r["chat_id"], r["role"], r["content"],
                          json.loads(r["answer"]) if r["answer"] else None, r["created"])
            for r in rows
        ]

    def message(self, message_id: int) -> StoredMessage | None:
        with self._db() as db:
            row = db.execute("SELECT chat_id FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            return None
        return next((m for m in self.messages(row["chat_id"]) if m.id == message_id), None)

    # Feedback

    def set_feedback(self, message_id: int, rating: str | None, comment: str | None = None,
                     answerable: bool | None = None) -> None:
        """Record (or, with ``rating=None``, remove) feedback on an assistant message.

        ``comment`` and ``answerable`` left as None keep what was recorded before.
        """
        if rating is None:
            with self._db() as db:
                db.execute("DELETE FROM feedback WHERE message_id = ?", (message_id,))
            return
        if rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', not {rating!r}")
        existing = self.feedback(message_id)
        now = _now()
        if existing is not None:
            with self._db() as db:
                db.execute(
                    "UPDATE feedback SET rating = ?, comment = ?, answerable = ?, updated = ? WHERE message_id = ?",
                    (rating, existing.comment if comment is None else comment,
                     int(existing.answerable if answerable is None else answerable), now, message_id),
                )
            return
        snapshot = self._snapshot(message_id)
        with self._db() as db:
            db.execute(
                "INSERT INTO feedback (message_id, chat_id, rating, comment, answerable, question, history, answer, "
                "refused, sources, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, snapshot["chat_id"], rating, comment or "", int(answerable is None or answerable),
                 snapshot["question"], json.dumps(snapshot["history"]), snapshot["answer"], int(snapshot["refused"]),
                 json.dumps(snapshot["sources"]), now, now),
            )

    def _snapshot(self, message_id: int) -> dict[str, Any]:
        """The question an assistant message answered, the conversation before it, and the answer."""
        target = self.message(message_id)
        if target is None or target.role != "assistant":
            raise ValueError(f"message {message_id} is not an answer")
        earlier = [m for m in self.messages(target.chat_id) if m.id < message_id]
        question_index = max((i for i, m in enumerate(earlier) if m.role == "user"), default=None)
        if question_index is None:
            raise ValueError(f"message {message_id} answers no question")
        history = [
            {"role": m.role, "content": strip_markers(m.content) if m.role == "assistant" else m.content}
            for m in earlier[:question_index]
        ]
        answer = target.answer or {}
        sources: list[str] = []
        for citation in answer.get("citations") or ():
            source = ((citation.get("passage") or {}).get("chunk") or {}).get("source", "")
            if source and source not in sources:
                sources.append(source)
        return {
            "chat_id": target.chat_id,
            "question": earlier[question_index].content,
            "history": history,
            "answer": target.content,
            "refused": bool(answer.get("refused", False)),
            "sources": sources,
        }

    def feedback(self, message_id: int) -> Feedback | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM feedback WHERE message_id = ?", (message_id,)).fetchone()
        return _feedback(row) if row else None

    def all_feedback(self) -> list[Feedback]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM feedback ORDER BY created, message_id").fetchall()
        return [_feedback(r) for r in rows]

    def export_jsonl(self) -> str:
        """All feedback as evaluation test cases, one JSON object per line."""
        return "".join(json.dumps(f.as_test_case(), ensure_ascii=False) + "\n" for f in self.all_feedback())


def _feedback(row: sqlite3.Row) -> Feedback:
    return Feedback(
        message_id=row["message_id"], chat_id=row["chat_id"], rating=row["rating"], comment=row["comment"],
        answerable=bool(row["answerable"]), question=row["question"], history=json.loads(row["history"]),
        answer=row["answer"], refused=bool(row["refused"]), sources=json.loads(row["sources"]),
        created=row["created"], updated=row["updated"],
    )
