"""What the benchmarks share."""

from __future__ import annotations

import subprocess
from pathlib import Path


def source_revision() -> str:
    """The commit the figures belong to, marked when src/ has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "src"], check=False)
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit"
    return commit + (" with uncommitted changes in src/" if dirty.returncode else "")
