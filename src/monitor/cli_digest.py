"""`monitor digest preview` and `monitor digest send`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor.errors import MonitorError
from monitor.settings import (
    Settings,
    SubscriptionConfig,
    load_digests,
    load_feeds,
    load_tags,
)

if TYPE_CHECKING:
    pass

from monitor.clikit import common_options, database_for, settings_of, tagger_of


@click.group()
def digest() -> None:
    """Daily digest emails: preview the next one, or send the due ones now."""


def _subscriptions(settings: Settings, names: tuple[str, ...]) -> list[SubscriptionConfig]:
    subscriptions = load_digests(
        settings.config_dir, tags=load_tags(settings.config_dir), feeds=load_feeds(settings.config_dir)
    )
    if not subscriptions:
        raise MonitorError(f"{settings.config_dir / 'digests.yaml'}: no subscriptions (see the README's digests.yaml)")
    known = {s.name for s in subscriptions}
    unknown = sorted(set(names) - known)
    if unknown:
        raise MonitorError(f"unknown subscription {unknown[0]!r} (configured: {', '.join(sorted(known))})")
    return [s for s in subscriptions if not names or s.name in names]


@digest.command("preview")
@click.option("--subscription", "names", multiple=True, metavar="NAME", help="This subscription (default: all).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML here and the text beside it (FILE.txt); default: the text to stdout.",
)
@common_options
@click.pass_context
def digest_preview(ctx: click.Context, names: tuple[str, ...], out: Path | None) -> None:
    """Render the digest each subscription would get now, without sending or recording anything.

    \b
    Example:
        monitor digest preview --subscription morning --out morning.html
    """
    from monitor.digest.send import preview

    settings = settings_of(ctx)
    subscriptions = _subscriptions(settings, names)
    tagger = tagger_of(settings)
    with database_for(settings) as database:
        for subscription in subscriptions:
            built, rendered = preview(database, subscription, now=datetime.now(UTC), tagger=tagger)
            if out is None:
                click.echo(f"Subject: {rendered.subject}\n\n{rendered.text}")
                continue
            target = out if len(subscriptions) == 1 else out.with_name(f"{out.stem}-{subscription.name}{out.suffix}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rendered.html, encoding="utf-8")
            target.with_suffix(".txt").write_text(rendered.text, encoding="utf-8")
            click.echo(f"{subscription.name}: {built.count} stories -> {target} and {target.with_suffix('.txt')}")


@digest.command("send")
@click.option("--subscription", "names", multiple=True, metavar="NAME", help="This subscription (default: all).")
@click.option("--dry-run", is_flag=True, help="Render and report, but send and record nothing.")
@common_options
@click.pass_context
def digest_send(ctx: click.Context, names: tuple[str, ...], dry_run: bool) -> None:
    """Send each subscription its digest now: the stories since its last digest, each once.

    Windows left pending by an earlier failure are sent first. Running it twice sends nothing twice.
    Exits 1 when a digest could not be sent (it stays pending and is retried).

    \b
    Example:
        MONITOR_SMTP_HOST=mail.example.org monitor digest send --subscription morning
    """
    from monitor.digest.send import SmtpSettings, preview, send_due
    from monitor.pipeline.refresh import worker_id

    settings = settings_of(ctx)
    subscriptions = _subscriptions(settings, names)
    tagger = tagger_of(settings)
    now = datetime.now(UTC)
    with database_for(settings) as database:
        if dry_run:
            for subscription in subscriptions:
                built, rendered = preview(database, subscription, now=now, tagger=tagger)
                click.echo(
                    f"{subscription.name}: would send {built.count} stories to {len(subscription.to)} "
                    f"recipient(s): {rendered.subject}"
                )
            return
        outcomes = send_due(
            database,
            subscriptions,
            smtp=SmtpSettings.from_settings(settings),
            now=now,
            worker=worker_id("digest"),
            tagger=tagger,
            until_now=True,
        )
    failed = False
    for outcome in outcomes:
        line = f"{outcome.subscription}: {outcome.status}, {outcome.stories} stories"
        if outcome.message_id:
            line += f", {outcome.message_id}"
        if outcome.failed_recipients:
            line += f"; refused by the server for {', '.join(outcome.failed_recipients)}"
        if outcome.error:
            line += f" ({outcome.error}); it stays pending and is retried"
            failed = True
        click.echo(line)
    if not outcomes:
        click.echo("nothing to send: every window has been sent")
    if failed:
        ctx.exit(1)
