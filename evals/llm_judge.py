"""The LLM judge (``chokepoint eval --judge llm``) and the word-share test it starts with."""

from __future__ import annotations

from typing import Any

from evals.judge import Judgement, numbers, words

WORD_SHARE = 0.60


class LexicalJudge:
    """The older word-share test: numbers all present, and >= 60% of the content words.

    A sentence that keeps the words but adds a "not" or swaps a name passes it (it gets 10 of the 30
    hand labels wrong), so it is no longer the gate; ``LLMJudge`` uses it to refuse a figure the
    passage lacks before asking the model.
    """

    name = "lexical"

    def __init__(self, word_share: float = WORD_SHARE) -> None:
        self.word_share = word_share

    def judge(self, sentence: str, passage: str) -> Judgement:
        sentence_words = words(sentence)
        passage_words = words(passage)
        share = len(sentence_words & passage_words) / len(sentence_words) if sentence_words else 1.0
        missing = tuple(sorted(numbers(sentence) - numbers(passage)))
        supported = not missing and share >= self.word_share
        reason = "" if supported else (
            f"numbers not in the passage: {', '.join(missing)}" if missing
            else f"only {share:.0%} of the content words are in the passage"
        )
        return Judgement(supported, share, missing, reason)


_LLM_PROMPT = """Passage:
<<<
{passage}
>>>

Claim: {sentence}

Does the passage state everything the claim says (every name, figure and date)? Answer with one word: yes or no."""


class LLMJudge:
    """Asks a chat model (LangChain interface) whether the passage supports the sentence.

    The lexical check on numbers still applies: a figure the passage lacks is never supported.
    """

    name = "llm"

    def __init__(self, chat_model: Any) -> None:
        self.chat_model = chat_model
        self.lexical = LexicalJudge()

    def judge(self, sentence: str, passage: str) -> Judgement:
        base = self.lexical.judge(sentence, passage)
        if base.missing_numbers:
            return base
        reply = self.chat_model.invoke([("user", _LLM_PROMPT.format(passage=passage, sentence=sentence))],
                                       max_tokens=3)
        answer = str(getattr(reply, "content", "")).strip().lower()
        supported = answer.startswith("yes")
        return Judgement(supported, base.word_share, (), "" if supported else f"LLM judge said {answer[:20]!r}")


