"""Evaluation: test sets, metrics, reports."""
