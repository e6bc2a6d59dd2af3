"""The settings every command runs with: the environment and chokepoint.toml, with the global options on top.

Its own module so that each command group can import it without importing ``cli`` (which imports them).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from index.settings import Settings


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from env and chokepoint.toml, with --data-dir / --sources-dir on top."""
    # Here, not at the top: pydantic-settings takes ~0.2 s, which `--help` and a usage error need not wait for.
    from index.settings import Settings

    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "sources_dir", None):
        overrides["sources_dir"] = Path(args.sources_dir)
    return Settings(**overrides)
