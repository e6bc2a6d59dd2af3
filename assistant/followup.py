"""Make a follow-up question standalone, so retrieval sees what the user means.

"And in 2014?" after "How much of its chip demand did China produce in 2020?" must search
as if asked in full. With an LLM the question is rewritten from the conversation; without
one, an elliptical question is joined to the last question the user asked in full.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.answer import Turn
from index.words import content_words

_CONNECTIVE = re.compile(
    r"^\s*(and|but|or|also|so|then|what about|how about|and what about|same for|what of|plus|versus|vs\.?)\b",
    re.I,
)
_PRONOUN = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there|the same)\b", re.I)
# "six years earlier", "the following year", "by then": a time that only the conversation can anchor.
_RELATIVE_TIME = re.compile(
    r"\b(\w+ (years?|decades?) (earlier|later|before|after|on)|(previous|following|next|prior) (year|decade)"
    r"|at (that|the) time|by then|since then|back then)\b",
    re.I,
)
# The lexical tokenizer keeps question words (they help BM25 little but harm nothing); here they are noise.
_QUESTION_WORDS = {"how", "what", "who", "whom", "when", "where", "which", "why", "did", "does", "do", "is",
                   "was", "were", "are", "much", "many", "it", "there"}


def is_elliptical(question: str) -> bool:
    """True when a question leans on what came before (a connective, a pronoun, or very few words)."""
    words = content_words(question)
    if _CONNECTIVE.search(question) or _RELATIVE_TIME.search(question):
        return True
    if len(words) <= 2:
        return True
    return bool(_PRONOUN.search(question)) and len(words - _QUESTION_WORDS) <= 5


def last_full_question(history: Sequence[Turn]) -> str:
    """The user's most recent question that stood on its own (walking back through follow-ups)."""
    chain: list[str] = []
    for turn in reversed(history):
        if turn.role != "user":
            continue
        chain.insert(0, turn.content)
        if not is_elliptical(turn.content):
            break
    return " ".join(chain)


def contextual_query(question: str, history: Sequence[Turn]) -> str:
    """The question, prefixed with the conversation's last full question when it is a follow-up."""
    if not history or not is_elliptical(question):
        return question
    earlier = last_full_question(history)
    return f"{earlier} {question}".strip() if earlier else question


REWRITE_SYSTEM = (
    "You rewrite a user's follow-up question into one standalone question, using the conversation "
    "for context. Keep names, years and figures. Output only the rewritten question, nothing else."
)


def rewrite_prompt(question: str, history: Sequence[Turn], max_turns: int = 6) -> list[tuple[str, str]]:
    """Chat messages asking an LLM to make ``question`` standalone."""
    lines = [f"{turn.role}: {turn.content[:500]}" for turn in history[-max_turns:]]
    conversation = "\n".join(lines)
    return [
        ("system", REWRITE_SYSTEM),
        ("user", f"Conversation:\n{conversation}\n\nFollow-up question: {question}\n\nStandalone question:"),
    ]
