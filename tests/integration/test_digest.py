"""Digests against a real SMTP server on loopback (aiosmtpd), on SQLite and PostgreSQL: what the message
holds, how it is grouped and escaped, and that every window is delivered exactly once whatever the server
does."""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from aiosmtpd.controller import Controller

from conftest import run_cli, write_feeds
from monitor.digest.send import SmtpSettings, send_due
from monitor.model import ArticleDraft, Extraction
from monitor.pipeline.dedupe import text_fingerprint
from monitor.pipeline.prepare import story_vectoriser
from monitor.pipeline.tag import Tagger
from monitor.settings import FeedConfig, SubscriptionConfig, load_tags
from monitor.store import repository
from monitor.store.db import Database
from monitor.store.schema import DigestRun, Source

NOW = datetime(2026, 2, 11, 6, 0, tzinfo=UTC)  # 11:00 in Ashgabat
STARLINK = (
    "Officials of Turkmenistan's communications ministry met a SpaceX delegation in Ashgabat on Tuesday to "
    "discuss a licence for the Starlink satellite internet service, the ministry said. The talks covered "
    "frequencies, a ground station near Mary and terminals for schools in Lebap and Dashoguz provinces. "
    "A working group will report within ninety days, officials said after the meeting in the capital."
)
DAM = (
    "Kyrgyzstan signed a financing agreement for the Kambarata-1 hydropower plant in Bishkek on Tuesday. "
    "The World Bank and three other lenders will provide 2.1 billion dollars for the first phase of the "
    "plant on the Naryn river, the energy ministry said. Construction of the dam starts in the spring."
)
FERRY = (
    "A weekly container ferry between Turkmenbashi in Turkmenistan and Baku will start in April, the port "
    "authorities said on Tuesday. Each sailing will carry up to 300 containers across the Caspian Sea, "
    "cutting the transit time for cargo from China to Europe by two days, officials in Ashgabat said."
)


class Mailbox:
    """An aiosmtpd handler that keeps what it is given; it can refuse or drop the first deliveries."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse_next = 0
        self.drop_next = 0
        self.refused_recipients: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address in self.refused_recipients:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.drop_next:
            self.drop_next -= 1
            server.transport.close()  # the connection drops mid-delivery
            return "250 never seen"
        if self.refuse_next:
            self.refuse_next -= 1
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def _smtp(port: int, **options: Any) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1", port=port, security="none", sender="monitor@example.org", retry_wait=0.05, **options
    )


@pytest.fixture
def tagger() -> Tagger:
    return Tagger(load_tags(Path("/nonexistent")))


SOURCES = ("ncanews", "trend", "akipress", "orient")


@pytest.fixture
def archive(database: Database, tagger: Tagger) -> Database:
    with database.session() as session:
        repository.sync_sources(
            session, feeds=[FeedConfig(name=n, url=f"https://{n}.example/rss") for n in SOURCES], now=NOW
        )
        repository.sync_tags(session, tags=tagger.tags)
    return database


def store(
    database: Database,
    tagger: Tagger,
    source: str,
    n: int,
    title: str,
    text: str,
    hours_ago: float,
    *,
    now: datetime = NOW,
) -> int:
    vectoriser = story_vectoriser(tagger)
    published = now - timedelta(hours=hours_ago)
    with database.session() as session:
        source_id = session.scalars(sa.select(Source.id).where(Source.name == source)).one()
        draft = ArticleDraft(
            source_id=source_id,
            guid=f"{source}-{n}",
            url=f"https://{source}.example/news/{n}",
            canonical_url=f"https://{source}.example/news/{n}",
            title=title,
            text=text,
            summary=None,
            author=None,
            published_at=published,
            fetched_at=published + timedelta(minutes=10),
            language="en",
            extraction=Extraction.PAGE,
            tags=tuple(tagger.tag(text, title=title)),
            watchlist_version=tagger.fingerprint,
            fingerprint=text_fingerprint(text),
            features=vectoriser.features(title, text),
        )
        _, article_id = repository.add_article(session, draft=draft)
        assert article_id is not None
        return article_id


def _subscription(**options: Any) -> SubscriptionConfig:
    values: dict[str, Any] = {
        "name": "morning",
        "to": ["analyst@example.org", "desk@example.org"],
        "at": "08:00",
        "timezone": "Asia/Ashgabat",
    }
    values.update(options)
    return SubscriptionConfig.model_validate(values)


def _send(database: Database, port: int, subscription: SubscriptionConfig, *, now: datetime = NOW, **smtp: Any) -> Any:
    return send_due(
        database,
        [subscription],
        smtp=_smtp(port, **smtp),
        now=now,
        worker="test",
        tagger=Tagger(load_tags(Path("/nonexistent"))),
    )


def _parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    return plain.get_content(), html.get_content()


def test_the_digest_has_both_parts_groups_escapes_and_local_times(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int]
) -> None:
    inbox, port = mailbox
    store(
        archive,
        tagger,
        "ncanews",
        1,
        "Turkmenistan, SpaceX discuss <script>alert(1)</script> Starlink",
        STARLINK,
        25.75,
    )
    store(
        archive,
        tagger,
        "trend",
        2,
        "Ashgabat talks on a Starlink licence",
        STARLINK.replace("Tuesday", "10 February"),
        24,
    )
    store(archive, tagger, "akipress", 3, "Kambarata-1 financing\nsigned", DAM, 5)
    store(archive, tagger, "orient", 4, "Turkmenbashi–Baku container ferry to start in April", FERRY, 4)

    (outcome,) = _send(archive, port, _subscription())

    assert outcome.status == "sent"
    assert outcome.stories == 3  # the Starlink story once, with "also reported by"
    (message,) = inbox.messages
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "morning: 3 stories — 11 February 2026"
    assert "\n" not in str(message["Subject"])
    assert message["Message-ID"] == outcome.message_id
    assert set(message["To"].addresses[i].addr_spec for i in range(2)) == {"analyst@example.org", "desk@example.org"}
    text, html = _parts(message)

    # Grouped by country, then topic: Turkmenistan (Starlink, then general news), then Kyrgyzstan.
    assert text.index("TURKMENISTAN") < text.index("-- Starlink --") < text.index("Turkmenbashi–Baku")
    assert text.index("Turkmenbashi–Baku") < text.index("KYRGYZSTAN") < text.index("Kambarata-1 financing signed")
    assert "By country: Turkmenistan 2, Kyrgyzstan 1" in text
    # The Starlink report from 25.75 hours before 11:00 in Ashgabat (UTC+5): 10 Feb, 09:15 local time.
    assert "ncanews, 10 Feb, 09:15 · also reported by trend" in text
    assert "*Turkmenistan's*" in text or "*Starlink*" in text  # the matched mention is marked
    # HTML: escaped, highlighted, styles inlined, the link kept.
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<mark" in html
    assert 'style="' in html
    assert 'href="https://ncanews.example/news/1"' in html
    assert "Also reported by trend" in html


def test_sending_twice_sends_once_and_new_stories_go_in_the_next_digest(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int]
) -> None:
    inbox, port = mailbox
    store(archive, tagger, "ncanews", 1, "Turkmenistan, SpaceX discuss Starlink", STARLINK, 5)
    subscription = _subscription()

    assert [o.status for o in _send(archive, port, subscription)] == ["sent"]
    assert _send(archive, port, subscription) == []  # the window is sent: nothing again
    assert len(inbox.messages) == 1

    # The next morning: a new story, and a late copy of the one already sent.
    store(archive, tagger, "akipress", 2, "Kambarata-1 financing signed", DAM, -20)
    store(
        archive, tagger, "trend", 3, "Ashgabat talks on a Starlink licence", STARLINK.replace("Tuesday", "Monday"), -20
    )
    (outcome,) = _send(archive, port, subscription, now=NOW + timedelta(days=1))

    assert outcome.stories == 1
    text, _ = _parts(inbox.messages[-1])
    assert "Kambarata-1" in text
    assert "Starlink" not in text  # each story once, never twice
    with archive.session() as session:
        runs = session.scalars(sa.select(DigestRun).order_by(DigestRun.window_end)).all()
        # The second window starts where the first ended: nothing falls between them.
        assert runs[1].window_start == runs[0].window_end


@pytest.mark.parametrize("trouble", ["refuse", "drop"])
def test_a_refusing_or_dropping_server_gets_a_retry_and_one_message(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int], trouble: str
) -> None:
    inbox, port = mailbox
    store(archive, tagger, "ncanews", 1, "Turkmenistan, SpaceX discuss Starlink", STARLINK, 5)
    if trouble == "refuse":
        inbox.refuse_next = 2
    else:
        inbox.drop_next = 1

    (outcome,) = _send(archive, port, _subscription())

    assert outcome.status == "sent"
    assert len(inbox.messages) == 1


def test_a_server_that_stays_down_leaves_the_window_pending_until_it_is_back(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int]
) -> None:
    inbox, port = mailbox
    store(archive, tagger, "ncanews", 1, "Turkmenistan, SpaceX discuss Starlink", STARLINK, 5)
    subscription = _subscription()

    (failed,) = _send(archive, _free_port(), subscription, attempts=2)  # nothing listens there
    assert failed.status == "failed"
    assert "ConnectionRefusedError" in (failed.error or "")
    with archive.session() as session:
        (run,) = session.scalars(sa.select(DigestRun)).all()
        assert (run.status, run.attempts) == ("pending", 1)
        assert run.next_attempt_at is not None
        assert run.next_attempt_at > NOW
        first_window = (run.window_start, run.window_end)

    assert _send(archive, port, subscription, now=NOW + timedelta(minutes=1)) == []  # backing off
    (sent,) = _send(archive, port, subscription, now=NOW + timedelta(minutes=30))
    assert sent.status == "sent"
    assert (sent.window_start, sent.window_end) == first_window
    assert sent.message_id == failed.message_id or failed.message_id is None
    assert len(inbox.messages) == 1


def test_a_refused_recipient_is_reported_and_the_others_get_it(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int]
) -> None:
    inbox, port = mailbox
    inbox.refused_recipients = {"desk@example.org"}
    store(archive, tagger, "ncanews", 1, "Turkmenistan, SpaceX discuss Starlink", STARLINK, 5)

    (outcome,) = _send(archive, port, _subscription())

    assert outcome.status == "sent"
    assert outcome.failed_recipients == ("desk@example.org",)
    assert len(inbox.messages) == 1
    with archive.session() as session:
        (run,) = session.scalars(sa.select(DigestRun)).all()
        assert run.failed_recipients is not None
        assert run.failed_recipients["desk@example.org"].startswith("550")


def test_filters_choose_the_stories_and_an_empty_digest_is_only_sent_when_asked(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int]
) -> None:
    inbox, port = mailbox
    store(archive, tagger, "akipress", 1, "Kambarata-1 financing signed", DAM, 5)

    (quiet,) = _send(archive, port, _subscription(tags=["starlink"]))
    assert (quiet.status, quiet.stories, len(inbox.messages)) == ("empty", 0, 0)
    (empty,) = _send(archive, port, _subscription(name="always", tags=["starlink"], send_empty=True))
    assert (empty.status, empty.stories) == ("sent", 0)
    assert "Nothing new matched" in _parts(inbox.messages[-1])[0]
    (kyrgyz,) = _send(archive, port, _subscription(name="kg", countries=["kg"]))
    assert kyrgyz.stories == 1


def test_the_first_window_covers_the_last_24_hours(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int]
) -> None:
    _, port = mailbox
    store(archive, tagger, "akipress", 1, "Kambarata-1 financing signed", DAM, 30)  # stored 30 h before 08:00
    store(archive, tagger, "orient", 2, "Turkmenbashi–Baku container ferry", FERRY, 5)

    (outcome,) = _send(archive, port, _subscription())

    assert outcome.window_end == datetime(2026, 2, 11, 3, 0, tzinfo=UTC)  # 08:00 in Ashgabat
    assert outcome.window_start == outcome.window_end - timedelta(hours=24)
    assert outcome.stories == 1


def test_digest_commands(
    archive: Database,
    tagger: Tagger,
    mailbox: tuple[Mailbox, int],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port = mailbox
    # The commands use the real clock: an article stored half an hour ago.
    store(archive, tagger, "ncanews", 1, "Turkmenistan, SpaceX discuss Starlink", STARLINK, 0.5, now=datetime.now(UTC))
    config = write_feeds(tmp_path / "config", [{"name": n, "url": f"https://{n}.example/rss"} for n in SOURCES])
    (config / "digests.yaml").write_text(
        yaml.safe_dump({"subscriptions": [{"name": "morning", "to": ["a@example.org"], "timezone": "Asia/Ashgabat"}]})
    )
    for key, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none"}.items():
        monkeypatch.setenv(f"MONITOR_{key}", value)

    preview = run_cli(
        "digest", "preview", "--out", str(tmp_path / "out" / "d.html"), database_url=database_url, config_dir=config
    )
    assert preview.exit_code == 0, preview.output
    assert "<mark" in (tmp_path / "out" / "d.html").read_text()
    assert "Turkmenistan, SpaceX discuss Starlink" in (tmp_path / "out" / "d.txt").read_text()
    dry = run_cli("digest", "send", "--dry-run", database_url=database_url, config_dir=config)
    assert "would send 1 stories to 1 recipient(s)" in dry.stdout
    assert inbox.messages == []

    sent = run_cli("digest", "send", database_url=database_url, config_dir=config)
    assert sent.exit_code == 0, sent.output
    assert "morning: sent, 1 stories" in sent.stdout
    again = run_cli("digest", "send", database_url=database_url, config_dir=config)
    assert "morning: empty, 0 stories" in again.stdout or "nothing to send" in again.stdout
    assert len(inbox.messages) == 1
    unknown = run_cli("digest", "send", "--subscription", "evening", database_url=database_url, config_dir=config)
    assert unknown.exit_code == 1
    assert "unknown subscription 'evening'" in unknown.stderr


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_starttls_and_ssl_with_login(
    archive: Database, tagger: Tagger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, security: str
) -> None:
    import ssl

    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this test's own certificate

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"monitor", b"s3cret")
        return AuthResult(success=ok)

    inbox = Mailbox()
    port = _free_port()
    # With implicit TLS (ssl) the whole session is encrypted; with starttls, AUTH only after STARTTLS.
    options: dict[str, Any] = {"authenticator": authenticate, "auth_require_tls": security == "starttls"}
    if security == "ssl":
        controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=context, **options)
    else:
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True, **options
        )
    controller.start()
    try:
        store(archive, tagger, "ncanews", 1, "Turkmenistan, SpaceX discuss Starlink", STARLINK, 5)
        smtp = SmtpSettings(
            host="localhost", port=port, security=security, user="monitor", password="s3cret", sender="m@example.org"
        )
        (outcome,) = send_due(archive, [_subscription()], smtp=smtp, now=NOW, worker="t", tagger=tagger)
    finally:
        controller.stop()
    assert outcome.status == "sent", outcome.error
    assert len(inbox.messages) == 1


def test_an_article_committed_just_after_a_window_closed_goes_in_the_next_one(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int]
) -> None:
    inbox, port = mailbox
    subscription = _subscription()
    store(archive, tagger, "ncanews", 1, "Turkmenistan, SpaceX discuss Starlink", STARLINK, 5)
    (first,) = _send(archive, port, subscription)
    # Stamped a minute before the window's end, but committed after the digest was built.
    late = (NOW - first.window_end).total_seconds() / 3600 + 1 / 60 + 1 / 6  # fetched 10 min after published
    store(archive, tagger, "akipress", 2, "Kambarata-1 financing signed", DAM, late)

    (second,) = _send(archive, port, subscription, now=NOW + timedelta(days=1))

    assert second.stories == 1
    assert "Kambarata-1" in _parts(inbox.messages[-1])[0]


def test_a_copy_carried_later_by_a_followed_outlet_reaches_its_subscription(
    archive: Database, tagger: Tagger, mailbox: tuple[Mailbox, int]
) -> None:
    inbox, port = mailbox
    follows_orient = _subscription(name="orient-only", sources=["orient"])
    store(archive, tagger, "ncanews", 1, "Turkmenistan, SpaceX discuss Starlink", STARLINK, 5)
    assert [o.status for o in _send(archive, port, follows_orient)] == ["empty"]
    # The next day, orient reposts nCa's text verbatim: linked as a copy, stored in the next window.
    store(archive, tagger, "orient", 2, "Turkmenistan, SpaceX discuss Starlink", STARLINK, -20)

    (outcome,) = _send(archive, port, follows_orient, now=NOW + timedelta(days=1))

    assert outcome.stories == 1
    assert "orient" in _parts(inbox.messages[-1])[0]


def test_a_worker_whose_claim_was_taken_over_records_nothing(archive: Database, tagger: Tagger) -> None:
    from monitor.store import digests as ledger

    with archive.session() as session:
        ledger.open_run(session, subscription="morning", start=NOW - timedelta(days=1), end=NOW, now=NOW)
    with archive.session() as session:
        (run,) = ledger.due_runs(session, now=NOW, subscriptions=["morning"])
        assert ledger.claim_run(session, run=run, worker="a", message_id="<1@x>", now=NOW)
    later = NOW + ledger.STALE_SENDING + timedelta(minutes=1)
    with archive.session() as session:
        (stale,) = ledger.due_runs(session, now=later, subscriptions=["morning"])
        assert ledger.claim_run(session, run=stale, worker="b", message_id="<2@x>", now=later)
        assert ledger.mark_sent(
            session, run_id=run.id, worker="b", subscription="morning", story_ids=[], failed_recipients={}, now=later
        )
    with archive.session() as session:
        ledger.mark_failed(session, run_id=run.id, worker="a", error="timeout", retry_at=later)  # too late: ignored
        assert not ledger.mark_sent(
            session, run_id=run.id, worker="a", subscription="morning", story_ids=[], failed_recipients={}, now=later
        )
        row = session.get(DigestRun, run.id)
        assert row is not None
        assert (row.status, row.worker, row.message_id) == ("sent", "b", "<1@x>")
