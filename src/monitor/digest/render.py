"""A digest as an email: Jinja2 templates (text, and HTML with autoescaping and inlined CSS), a subject with
the date and the count, and a multipart/alternative message whose headers cannot be broken by a title."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

import css_inline
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from monitor.digest.build import Digest


@dataclass(frozen=True, slots=True)
class Rendered:
    """A digest's subject and both bodies."""

    subject: str
    text: str
    html: str


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("monitor.digest", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_digest(digest: Digest) -> Rendered:
    """The subject, plain text and HTML (CSS inlined for mail clients) of a digest."""
    local_end = digest.local_end
    date = f"{local_end.day} {local_end:%B %Y}"
    title = f"Central Asia monitor — {date}"
    start = digest.window_start.astimezone(digest.local_end.tzinfo)
    window = f"{start:%d %b %H:%M} – {local_end:%d %b %H:%M} ({digest.timezone})"
    environment = _environment()
    context = {"digest": digest, "title": title, "window": window}
    text = environment.get_template("digest.txt.j2").render(context)
    html = css_inline.inline(environment.get_template("digest.html.j2").render(context))
    count = f"{digest.count} stor{'y' if digest.count == 1 else 'ies'}"
    return Rendered(subject=_one_line(f"{digest.subscription}: {count} — {date}"), text=text, html=html)


def build_message(
    rendered: Rendered, *, sender: str, recipients: tuple[str, ...], message_id: str, when: datetime
) -> EmailMessage:
    """multipart/alternative: the text part first, the HTML part preferred by clients that can show it."""
    message = EmailMessage()
    message["Subject"] = _one_line(rendered.subject)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(when)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _one_line(value: str) -> str:
    """No CR, LF or other line breaks in a header, whatever a title holds."""
    return " ".join(value.split())
