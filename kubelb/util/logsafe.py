"""Log lines a tenant cannot forge: tenant-controlled strings are rendered escaped.

`shown(value)` renders one string for a log argument: as is when every character is printable,
else as a Python repr (`'web\\nINFO ...'`), and cut to `MAX_SHOWN` characters. `Formatter` is the
net under every call site: it escapes any control character left in a record's message, so one
record is one line whatever its arguments held (tracebacks, appended after the message, keep
their lines). `install(format)` puts it on the root logger's handlers.
"""

from __future__ import annotations

import logging

MAX_SHOWN = 300


def shown(value: object) -> str:
    """`value` as a log argument: escaped unless printable, and never longer than MAX_SHOWN."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_SHOWN:
        text = f"{text[:MAX_SHOWN]}... ({len(text)} characters)"
    return text if text.isprintable() else repr(text)


def escape(text: str) -> str:
    """Each non-printable character as its escape sequence (newline -> \\n); others kept."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Formatter(logging.Formatter):
    """A `logging.Formatter` whose message part is always one line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


def install(fmt: str) -> None:
    """Format every handler of the root logger with `Formatter(fmt)`."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(Formatter(fmt))
