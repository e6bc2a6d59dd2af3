"""Evaluation: test sets, metrics, reports."""

from pathlib import Path

DEFAULT_SET = Path(__file__).resolve().parent / "sets" / "default.jsonl"
"""The project's own test set: ``chokepoint eval`` runs it when given no ``--set``."""
