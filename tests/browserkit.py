"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol: load, fill, click, screenshot."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from webkit import free_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def chromium_or_skip() -> str:
    """The chromium executable; a skip locally, a failure under CI, when it is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    return chromium


class Browser:
    """One headless Chromium with one page. Events seen while waiting are kept in events."""

    def __init__(self, chromium: str, profile: Path) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={profile}",
                "--window-size=1280,1400",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.events: list[dict[str, Any]] = []
        self._closing = ExitStack()
        self._ids = itertools.count(1)
        self.socket = self._connect(port)
        self.send("Page.enable")
        self.send("Runtime.enable")

    def _connect(self, port: int) -> ClientConnection:
        deadline = time.monotonic() + 30
        while True:
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                page = next(t for t in targets if t["type"] == "page")
                return self._closing.enter_context(
                    connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
                )
            except (httpx.HTTPError, StopIteration, OSError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port") from None
                time.sleep(0.2)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result."""
        message_id = next(self._ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        """Load url and wait until it is loaded."""
        self.navigating(f"location.href = {json.dumps(url)}")

    def navigating(self, action: str) -> None:
        """Run an action that loads another page (submit, click) and wait for the new page."""
        self.evaluate("window.__old_page = true")
        self.evaluate(action)
        deadline = time.monotonic() + 20
        while not self.evaluate("window.__old_page === undefined && document.readyState === 'complete'"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no new page after {action}")
            time.sleep(0.05)

    def screenshot(self, name: str) -> Path:
        """Save the whole page as test-artifacts/<name>."""
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the connection and the browser."""
        self._closing.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
