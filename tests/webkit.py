"""`monitor serve`'s app on a real loopback HTTP server (uvicorn in a thread), for the API and browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from monitor.store.db import open_database
from monitor.web.app import create_app


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(database_url: str, *, token: str | None = None) -> Iterator[str]:
    """Serve the app over database_url on 127.0.0.1; yield its base URL (no trailing slash)."""
    database = open_database(database_url)
    port = free_port()
    config = uvicorn.Config(create_app(database, token=token), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        database.dispose()
