"""The digest as people get it: sent by a running `monitor run` on schedule to a real SMTP server, and its
HTML part rendered by headless Chromium (the screenshot is kept in test-artifacts/digest.png)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from aiosmtpd.controller import Controller

from conftest import FeedServer, write_feeds
from feedbuilders import rss2

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
STARLINK = (
    "Officials of Turkmenistan's communications ministry met a SpaceX delegation in Ashgabat on Tuesday to "
    "discuss a licence for the Starlink satellite internet service, the ministry said. The talks covered "
    "frequencies, a ground station near Mary and terminals for schools in Lebap and Dashoguz provinces."
)
DAM = (
    "Kyrgyzstan signed a financing agreement for the Kambarata-1 hydropower plant in Bishkek on Tuesday. "
    "The World Bank and three other lenders will provide 2.1 billion dollars for the first phase of the plant."
)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        return "250 OK"


def _page(title: str, text: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1><p>{text}</p></article></body></html>"
    )


def test_the_service_sends_the_due_digest_and_chromium_renders_it(server: FeedServer, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    items = [
        {"title": "Turkmenistan, SpaceX discuss Starlink licence", "text": STARLINK},
        {"title": "Kambarata-1 financing signed in Bishkek", "text": DAM},
    ]
    entries = [
        {
            "title": item["title"],
            "link": server.add(f"/news/{n}.html", _page(item["title"], item["text"])),
            "guid": f"n{n}",
            "published": now - timedelta(hours=2 + n),
        }
        for n, item in enumerate(items)
    ]
    config = write_feeds(
        tmp_path / "config",
        [{"name": "wire", "url": server.add("/rss.xml", rss2(entries), content_type="application/rss+xml")}],
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    environment.update(MONITOR_ALLOW_PRIVATE_NETWORKS="1", MONITOR_HOST_DELAY="0", MONITOR_MAIL_FROM="m@example.org")
    database_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    argv = [sys.executable, "-m", "monitor", "--database-url", database_url, "--config-dir", str(config)]
    subprocess.run([*argv, "poll"], check=True, env=environment, capture_output=True, timeout=120)
    # The send time passes after the articles were stored: the service, started late, sends that digest at
    # once (late rather than never); the next one is due tomorrow.
    stored_by = datetime.now(UTC)
    send_time = (stored_by + timedelta(minutes=1)).replace(second=0, microsecond=0)
    time.sleep((send_time - datetime.now(UTC)).total_seconds() + 0.5)
    at = send_time.astimezone(ZoneInfo("Asia/Ashgabat")).strftime("%H:%M")
    subscription = {"name": "morning", "to": ["analyst@example.org"], "at": at, "timezone": "Asia/Ashgabat"}
    (config / "digests.yaml").write_text(yaml.safe_dump({"subscriptions": [subscription]}))
    inbox = Inbox()
    with _free_port_controller(inbox) as port:
        environment.update(MONITOR_SMTP_HOST="127.0.0.1", MONITOR_SMTP_PORT=str(port), MONITOR_SMTP_SECURITY="none")
        service = subprocess.Popen(
            [*argv, "run", "--tick", "1s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
        )
        try:
            deadline = time.monotonic() + 90
            while not inbox.messages and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            service.send_signal(signal.SIGTERM)
            _, stderr = service.communicate(timeout=60)
    assert len(inbox.messages) == 1, stderr[-3000:]
    assert "digest=morning outcome=sent" in stderr

    import email
    import email.policy

    message = email.message_from_bytes(inbox.messages[0], policy=email.policy.default)
    html_part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    assert html_part is not None
    html = html_part.get_content()
    assert "Kambarata-1" in html
    _screenshot(html, tmp_path)


def _screenshot(html: str, folder: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    page = folder / "digest.html"
    page.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "digest.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--window-size=760,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (760, 900)
    assert len(data) > 20_000  # a rendered page, not a blank one


class _free_port_controller:  # noqa: N801 - used as a context manager
    def __init__(self, handler: Inbox) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> int:
        self.controller.start()
        return self.port

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
