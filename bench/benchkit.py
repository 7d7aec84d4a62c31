"""What the benchmarks share."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


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


async def serve_connection(
    respond: Callable[[str, dict[str, str]], bytes], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer GETs on one keep-alive connection until the client closes it: respond(target, headers) gives
    each whole HTTP response (headers named in lower case)."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            request = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            writer.write(respond(request[1] if len(request) > 1 else "/", headers))
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


# --- Machine-readable results (bench/run_suite.py reads them) -------------------------------------------------

RESULT_FORMAT = 1  # bump when a key of write_result's document changes meaning


@dataclass(frozen=True)
class Target:
    """What a figure must reach: `observed` is the figure judged when it is not the measured one (a p95, the
    slowest pass), `value` and `unit` the bound, `text` how the script states it."""

    text: str
    value: float
    unit: str
    met: bool
    observed: float | None = None


@dataclass(frozen=True)
class Figure:
    """One headline figure of a run: its median (or the statistic named), its baseline and target."""

    name: str
    backend: str
    value: float
    unit: str
    statistic: str
    target: Target | None = None
    baseline: float | None = None
    baseline_name: str | None = None
    ratio: float | None = None  # value / baseline, or as the script defines it (pages/s: baseline time / time)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """--json PATH, as every benchmark script takes it."""
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write the headline figures, targets, peak memory and exit status to PATH as JSON",
    )


def peak_rss(*, children: bool) -> dict[str, Any]:
    """Peak resident set size in MB from getrusage: this process's, and the largest waited-for child's."""
    peak: dict[str, Any] = {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    how = "getrusage(RUSAGE_SELF)"
    if children:
        peak["children"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        how += "; children: getrusage(RUSAGE_CHILDREN), the largest child that has exited"
    peak["how"] = how
    return peak


def write_result(
    path: Path | None,
    *,
    benchmark: str,
    status: int,
    revision: str,
    figures: Sequence[Figure] = (),
    memory: dict[str, Any] | None = None,
    error: str | None = None,
    notes: Sequence[str] = (),
) -> int:
    """Write one run's result to path as JSON (nothing when path is None); return status, the exit status."""
    if path is None:
        return status
    document = {
        "format": RESULT_FORMAT,
        "benchmark": benchmark,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "exit_status": status,
        "met": {0: True, 1: False}.get(status),
        "error": error,
        "figures": [asdict(figure) for figure in figures],
        "peak_rss_mb": memory if memory is not None else peak_rss(children=True),
        "notes": list(notes),
        "revision": revision,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
    return status
