"""What the benchmarks share."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
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
