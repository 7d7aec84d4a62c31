"""Logging for people (a line of key=value pairs) or for machines (`--log-format json`: one JSON object per
line, with the key=value pairs of the message as fields: feed, url, outcome, status, ...)."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_PAIR = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)")
_NOISY = ("httpx", "httpcore", "trafilatura", "htmldate", "courlan", "apscheduler")
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the message's key=value pairs, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        for key, value in _PAIR.findall(message):
            if key not in entry:
                entry[key] = _unquote(value)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def configure(verbosity: int, *, fmt: str = "text", default: int = logging.WARNING) -> None:
    """Log to stderr at the level verbosity asks for (0: default, 1: info, 2+: debug), as text or JSON."""
    level = default if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
