"""The controller's log: plain lines for a person, or JSON lines for a log collector
(`hallctl run --log-format json`), one object per record:

    {"time": "2026-11-23T09:00:01.234+08:00", "level": "WARNING", "logger": "controller...",
     "thread": "hall", "message": "...", "command_id": 1234}

`command_id` is the command log's row (`commands.id`, what `/api/v1/tickets/{id}` history and
the audit log show) of the command a record was logged for: what the hall thread logs about a
command it committed (each one at `--log-level debug`), and whatever the event subscribers log
while they handle that command's events (the calling floor, the case desk). Records logged
elsewhere (a device's reconnect loop, the web server) have none.

Nothing personal is logged either way: the controller only ever holds ID numbers, names and
phones sealed, and logs masked forms at most (tests/test_masking.py reads both formats).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

# the command whose events the hall thread is handing out (None: none)
COMMAND_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("command_id", default=None)
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CommandIdFilter(logging.Filter):
    """Stamps each record with the command being handled where it was logged (in the
    logging thread: the formatter may run later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "command_id", None) is None:
            record.command_id = COMMAND_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; Chinese as it is, never split over lines."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created).astimezone().isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        command_id = getattr(record, "command_id", None)
        if command_id is not None:
            line["command_id"] = command_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str = "text", level: int = logging.INFO) -> logging.Handler | None:
    """The root logger writes to stderr in `log_format`; the handler it writes with. Plain text
    leaves a logging already set up alone, as logging.basicConfig does (a test's capture);
    JSON replaces a handler that writes to the console (one line, one format)."""
    root = logging.getLogger()
    if log_format == "text" and root.handlers:
        return None
    for old in list(root.handlers):
        if type(old) is logging.StreamHandler and old.stream in (sys.stderr, sys.stdout):
            root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CommandIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return handler
