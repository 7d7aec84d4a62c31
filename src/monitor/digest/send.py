"""Sending digests: the one path the scheduler and `monitor digest send` share.

For each subscription: open the window that has come due (from the end of its last window to its latest
send time; the first covers the 24 hours before), then send every pending window of it, oldest first. A
window is sent by one worker (the ledger's claim), with a Message-ID fixed before the first attempt; a
failure — refused, timeout, dropped connection, 4xx — is retried at once a few times, then left pending and
tried again later with backoff. A window that was sent is never sent again, and each story goes to a
subscription once.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from monitor.digest.build import Digest, build_digest
from monitor.digest.render import Rendered, build_message, render_digest
from monitor.pipeline.tag import Tagger
from monitor.settings import Settings, SubscriptionConfig
from monitor.store import digests as ledger
from monitor.store.db import Database, take_write_lock

log = logging.getLogger(__name__)

FIRST_WINDOW = timedelta(hours=24)
TRANSIENT = (smtplib.SMTPException, OSError, socket.timeout)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to send."""

    host: str = "localhost"
    port: int | None = None
    user: str | None = None
    password: str | None = None
    security: str = "starttls"  # none | starttls | ssl
    sender: str = "monitor@localhost"
    timeout: float = 30.0
    attempts: int = 3  # at once, before the window is left pending for later
    retry_wait: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings:
        """From the MONITOR_SMTP_* and MONITOR_MAIL_FROM settings."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password,
            security=settings.smtp_security,
            sender=settings.mail_from,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one window of one subscription."""

    subscription: str
    window_start: datetime
    window_end: datetime
    status: str  # sent | empty | failed
    stories: int
    subject: str | None = None
    message_id: str | None = None
    error: str | None = None
    failed_recipients: tuple[str, ...] = ()


class DeliveryError(Exception):
    """The server took the message for none of the recipients."""


def latest_send_time(subscription: SubscriptionConfig, now: datetime) -> datetime:
    """The subscription's most recent send time at or before now (its local time of day, as an instant).

    Compared as instants, not wall-clock times: on the night clocks spring forward, 02:30 does not exist
    locally and must not be taken for a time still to come, or already past.
    """
    local_date = now.astimezone(subscription.zone).date()
    for days in range(3):
        candidate = datetime.combine(
            local_date - timedelta(days=days), subscription.send_time, tzinfo=subscription.zone
        )
        instant = candidate.astimezone(now.tzinfo)
        if instant <= now:
            return instant
    raise AssertionError("a send time within the last three days always exists")


def send_due(
    database: Database,
    subscriptions: Sequence[SubscriptionConfig],
    *,
    smtp: SmtpSettings,
    now: datetime,
    worker: str,
    tagger: Tagger | None = None,
    names: Collection[str] = (),
    until_now: bool = False,
    retry_later: timedelta = timedelta(minutes=5),
) -> list[Outcome]:
    """Open the windows that have come due and send the pending ones, oldest first (a window is only sent
    once every earlier window of its subscription has been). until_now: the window ends now instead of at
    the latest send time (`monitor digest send`)."""
    began = time.monotonic()

    def current() -> datetime:  # now, moved on by the time this call has taken (slow servers)
        return now + timedelta(seconds=time.monotonic() - began)

    chosen = [s for s in subscriptions if not names or s.name in names]
    outcomes: list[Outcome] = []
    for subscription in chosen:
        end = now if until_now else latest_send_time(subscription, now)
        with database.session() as session:
            take_write_lock(session)  # SQLite: no other sender between reading the last window and adding one
            last = ledger.last_window_end(session, subscription=subscription.name)
            if last is None or last < end:
                start = last if last is not None else end - FIRST_WINDOW
                ledger.open_run(session, subscription=subscription.name, start=start, end=end, now=now)
        with database.session() as session:
            runs = ledger.due_runs(session, now=current(), subscriptions=[subscription.name])
        for run in runs:
            try:
                outcome = _send_run(database, subscription, run, smtp=smtp, now=current(), worker=worker, tagger=tagger)
            except Exception as exc:  # a bug must not leave the window claimed and silent
                log.exception("digest=%s outcome=crash", subscription.name)
                outcome = Outcome(subscription.name, run.window_start, run.window_end, "failed", 0, error=repr(exc))
            if outcome is None:
                break  # another worker is sending this subscription's oldest window
            outcomes.append(outcome)
            if outcome.status == "failed":
                with database.session() as session:
                    retry_at = current() + min(retry_later * 2 ** min(run.attempts, 6), timedelta(hours=1))
                    ledger.mark_failed(
                        session, run_id=run.id, worker=worker, error=outcome.error or "failed", retry_at=retry_at
                    )
                break  # later windows wait for this one: a story is never sent in two windows at once
    return outcomes


def preview(
    database: Database, subscription: SubscriptionConfig, *, now: datetime, tagger: Tagger | None = None
) -> tuple[Digest, Rendered]:
    """The digest the subscription would get if its window closed now; nothing is sent or recorded."""
    with database.session() as session:
        last = ledger.last_window_end(session, subscription=subscription.name)
        start = last if last is not None and last < now else now - FIRST_WINDOW
        digest = build_digest(session, subscription, start=start, end=now, tagger=tagger)
    return digest, render_digest(digest)


def _send_run(
    database: Database,
    subscription: SubscriptionConfig,
    run: ledger.Run,
    *,
    smtp: SmtpSettings,
    now: datetime,
    worker: str,
    tagger: Tagger | None,
) -> Outcome | None:
    domain = smtp.sender.rpartition("@")[2] or "monitor.local"
    with database.session() as session:
        if not ledger.claim_run(session, run=run, worker=worker, message_id=make_msgid("digest", domain), now=now):
            return None  # another worker has it
    with database.session() as session:
        message_id = run.message_id or ledger.message_id_of(session, run_id=run.id)
        digest = build_digest(session, subscription, start=run.window_start, end=run.window_end, tagger=tagger)

    def outcome(status: str, stories: int, **details: Any) -> Outcome:
        return Outcome(subscription.name, run.window_start, run.window_end, status, stories, **details)

    def record(story_ids: Sequence[int], refused: dict[str, str]) -> None:
        with database.session() as session:
            recorded = ledger.mark_sent(
                session,
                run_id=run.id,
                worker=worker,
                subscription=subscription.name,
                story_ids=story_ids,
                failed_recipients=refused,
                now=now,
            )
        if not recorded:  # our claim went stale and another worker took the window over
            log.warning("digest=%s outcome=claim-lost window_end=%s", subscription.name, run.window_end.isoformat())

    if digest.count == 0 and not subscription.send_empty:
        record([], {})
        log.info("digest=%s outcome=empty window_end=%s", subscription.name, run.window_end.isoformat())
        return outcome("empty", 0)
    rendered = render_digest(digest)
    message = build_message(rendered, sender=smtp.sender, recipients=subscription.to, message_id=message_id, when=now)
    try:
        refused = deliver(message, smtp)
    except (DeliveryError, *TRANSIENT) as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("digest=%s outcome=failed attempts=%d error=%r", subscription.name, run.attempts + 1, error)
        return outcome("failed", digest.count, subject=rendered.subject, error=error)
    record(digest.story_ids, refused)
    for address, reason in refused.items():
        log.warning("digest=%s recipient=%s outcome=refused reason=%r", subscription.name, address, reason)
    log.info(
        "digest=%s outcome=sent stories=%d message_id=%s recipients=%d",
        subscription.name,
        digest.count,
        message_id,
        len(subscription.to) - len(refused),
    )
    return outcome(
        "sent",
        digest.count,
        subject=rendered.subject,
        message_id=message_id,
        failed_recipients=tuple(refused),
    )


def deliver(message: EmailMessage, smtp: SmtpSettings) -> dict[str, str]:
    """Hand message to the SMTP server, retrying transient failures a few times at once; return the
    recipients it refused (with the server's reason) when it accepted the others."""
    retrying = Retrying(
        stop=stop_after_attempt(smtp.attempts),
        wait=wait_exponential(multiplier=smtp.retry_wait, max=30),
        retry=retry_if_exception_type(TRANSIENT),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                return _deliver_once(message, smtp)
    except RetryError as exc:  # pragma: no cover - reraise=True raises the last error itself
        raise DeliveryError(str(exc)) from exc
    raise AssertionError("unreachable")


def _deliver_once(message: EmailMessage, smtp: SmtpSettings) -> dict[str, str]:
    context = ssl.create_default_context()
    if smtp.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port or 465, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(
            smtp.host, smtp.port or (587 if smtp.security == "starttls" else 25), timeout=smtp.timeout
        )
    with client:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if smtp.user:
            client.login(smtp.user, smtp.password or "")
        try:
            refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            temporary = any(400 <= code < 500 for code, _ in exc.recipients.values())
            if temporary:
                raise
            raise DeliveryError(f"every recipient refused: {_reasons(exc.recipients)}") from None
    return {address: _reason(code, text) for address, (code, text) in refused.items()}


def _reason(code: int, text: bytes | str) -> str:
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"


def _reasons(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {_reason(code, text)}" for address, (code, text) in recipients.items())
