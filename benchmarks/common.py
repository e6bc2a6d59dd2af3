"""What every benchmark script needs first: models loaded offline, and the machine's load to record."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

# Set before anything imports transformers or Chroma: the benchmarks run offline, like the app.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, recorded beside every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_settings(folder: Path, **overrides: Any) -> Any:
    """Settings for a benchmark corpus folder: its data under ``data/``, its files under ``sources/``."""
    from index.settings import Settings

    return Settings(data_dir=folder / "data", sources_dir=folder / "sources", **overrides)


def rss_mib(pid: int | str = "self") -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MiB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(status[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a child server: SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
