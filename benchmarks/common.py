"""What every benchmark script needs first: models loaded offline, and the machine's load to record."""

from __future__ import annotations

import os
from pathlib import Path

# Set before anything imports transformers or Chroma: the benchmarks run offline, like the app.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, recorded beside every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
