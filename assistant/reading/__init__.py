"""The extractive reading: what a question asks, which passage sentences answer it, the chain of hops
that reaches them, and the direct answer built from cited spans.

    asks (spaCy parse of the question) ─┐
    question (its form and names) ──────┼─> candidates -> extractive (quoted sentences) -> direct
    hop (later retrieval hops) ─────────┘

Nothing here calls a language model: ``assistant.llm`` is the other answerer's room.
"""
