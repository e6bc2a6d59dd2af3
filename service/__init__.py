"""Chokepoint for other tools: an OpenAI-compatible HTTP API (``chokepoint serve``) and a LangChain retriever.

It sits at the top of the data flow, beside ``app.py`` and the CLI: it builds on ``assistant.Engine``
and nothing below imports it.
"""
