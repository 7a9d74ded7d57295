"""Process-wide logging set-up and the event loop runner; only `kubelb.app` configures output.

The manager and the agent take kubelb's `--log-level` and upstream KubeLB's zap flags
(controller-runtime's `--zap-log-level`, `--zap-devel`, `--zap-encoder`, `--zap-stacktrace-level`,
`--zap-time-encoding`), so an upstream install's arguments work unchanged. `--zap-encoder=json`
writes one JSON object per line: ts, level, logger, msg, caller, and the fields a log call passes
with `extra=` (FIELDS: tenant, object, reason).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import traceback
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop

from kubelb.util import logfields, logsafe

T = TypeVar("T")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries that are chatty at INFO about things an operator does not act on.
QUIET = ("aiohttp.access", "kubernetes_asyncio", "grpc")
# Record attributes (set with `extra=`) that JSON lines carry as their own keys.
FIELDS = ("tenant", "object", "reason")

# zap's level names; an integer N > 0 is logr's V(N), more verbose than debug: kubelb has
# nothing below debug, so every N is debug.
ZAP_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "panic": logging.CRITICAL,
}
STACKTRACE_LEVELS = {"info": logging.INFO, "error": logging.ERROR, "panic": logging.CRITICAL}
ENCODERS = ("console", "json")
TIME_ENCODINGS = ("epoch", "millis", "nano", "iso8601", "rfc3339", "rfc3339nano")
LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "panic",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    level: int = logging.INFO
    encoder: str = "console"
    stacktrace_level: int | None = None  # None: tracebacks only for records with an exception
    time_encoding: str | None = None  # None: the console's local time, rfc3339 in JSON

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level).lower()


DEFAULT_OPTIONS = Options()


def parse_zap_level(text: str) -> int:
    """A `--zap-log-level` value: debug, info, error, panic, or an integer verbosity above 0."""
    value = text.strip().lower()
    if value in ZAP_LEVELS:
        return ZAP_LEVELS[value]
    try:
        verbosity = int(value)
    except ValueError:
        verbosity = 0
    if verbosity > 0:
        return logging.DEBUG
    raise argparse.ArgumentTypeError(
        f"invalid log level {text!r}: debug, info, error, panic or an integer above 0"
    )


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "t", "true", "yes", "on"):
        return True
    if value in ("0", "f", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """kubelb's --log-level and upstream's zap flags."""
    add = parser.add_argument
    add(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info, debug with --zap-devel); --zap-log-level wins when "
        "both are given",
    )
    add(
        "--zap-log-level",
        type=parse_zap_level,
        metavar="LEVEL",
        help="upstream's name for the log level: debug, info, error, panic (kubelb: critical), "
        "or an integer N > 0 (logr verbosity; kubelb logs nothing below debug, so debug)",
    )
    add(
        "--zap-devel",
        type=_parse_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="development logging: default level debug, console encoder, tracebacks from "
        "warnings up (default: false)",
    )
    add(
        "--zap-encoder",
        choices=ENCODERS,
        help="console: one text line per record (kubelb's default, also in production); json: "
        "one JSON object per line with ts, level, logger, msg, caller, and tenant, object and "
        "reason when a record carries them",
    )
    add(
        "--zap-stacktrace-level",
        choices=sorted(STACKTRACE_LEVELS),
        help="append the call stack to records at this level and above (default: none, only "
        "an exception's traceback; warn with --zap-devel)",
    )
    add(
        "--zap-time-encoding",
        choices=TIME_ENCODINGS,
        help="timestamp format: epoch (seconds), millis, nano, iso8601, rfc3339, rfc3339nano "
        "(default: local time in console lines, rfc3339 in JSON)",
    )


def options_from_args(args: argparse.Namespace) -> Options:
    devel = bool(getattr(args, "zap_devel", False))
    if getattr(args, "zap_log_level", None) is not None:
        level = args.zap_log_level
    elif getattr(args, "log_level", None):
        level = logging.getLevelName(args.log_level.upper())
    else:
        level = logging.DEBUG if devel else logging.INFO
    stack = getattr(args, "zap_stacktrace_level", None)
    return Options(
        level=level,
        encoder=getattr(args, "zap_encoder", None) or "console",
        stacktrace_level=(
            STACKTRACE_LEVELS[stack] if stack else (logging.WARNING if devel else None)
        ),
        time_encoding=getattr(args, "zap_time_encoding", None),
    )


def format_time(created: float, encoding: str) -> str | float | int:
    """`created` (seconds since the epoch) in one of zap's time encodings."""
    if encoding == "epoch":
        return created
    if encoding == "millis":
        return created * 1000.0
    if encoding == "nano":
        seconds = int(created)  # whole seconds apart: a float holds only ~16 digits
        return seconds * 1_000_000_000 + round((created - seconds) * 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(created).astimezone()
    if encoding == "iso8601":
        return moment.isoformat(timespec="milliseconds")
    if encoding == "rfc3339":
        return moment.isoformat(timespec="seconds")
    return moment.isoformat(timespec="microseconds")  # rfc3339nano: Python keeps microseconds


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line (json.dumps escapes every control character)."""

    def __init__(self, time_encoding: str | None = None) -> None:
        super().__init__()
        self.time_encoding = time_encoding or "rfc3339"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": format_time(record.created, self.time_encoding),
            "level": LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "logger": record.name,
            "msg": record.getMessage(),
            "caller": f"{record.module}.py:{record.lineno}",
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stacktrace"] = record.stack_info
        return json.dumps(line, default=str)


class ConsoleFormatter(logsafe.Formatter):
    """kubelb's text line, with the timestamp in a zap time encoding when one is asked for."""

    def __init__(self, fmt: str, time_encoding: str | None = None) -> None:
        super().__init__(fmt)
        self.time_encoding = time_encoding

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if self.time_encoding is None:
            return super().formatTime(record, datefmt)
        return str(format_time(record.created, self.time_encoding))


class FieldsFilter(logging.Filter):
    """Give each record the tenant and object of the `logfields.scope` it was logged in, else
    the process's own (an agent serves one tenant); `extra=` on the call wins."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__()
        self.fields = dict(fields)

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in {**self.fields, **logfields.current()}.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class StackFilter(logging.Filter):
    """Attach the caller's stack to records at `level` and above (zap's stacktrace level)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level and not record.exc_info and not record.stack_info:
            frames = list(traceback.extract_stack())
            for i in range(len(frames) - 1, -1, -1):
                if frames[i].filename == record.pathname and frames[i].lineno == record.lineno:
                    frames = frames[: i + 1]
                    break
            record.stack_info = "Stack (most recent call last):\n" + "".join(
                traceback.format_list(frames)
            ).rstrip("\n")
        return True


def setup(level: str | Options = "info", fields: Mapping[str, str] | None = None) -> None:
    """Configure the root logger: a level name (kubelb's defaults) or `Options` from the flags;
    `fields` (e.g. the agent's tenant) go on every record that has none of its own."""
    options = (
        Options(level=logging.getLevelName(level.upper())) if isinstance(level, str) else level
    )
    logging.basicConfig(level=options.level, format=FORMAT, stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        if options.encoder == "json":
            handler.setFormatter(JSONFormatter(options.time_encoding))
        else:
            # one record, one line: tenant strings cannot forge a line
            handler.setFormatter(ConsoleFormatter(FORMAT, options.time_encoding))
        handler.addFilter(FieldsFilter(fields or {}))
        if options.stacktrace_level is not None:
            handler.addFilter(StackFilter(options.stacktrace_level))
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop, the production event loop."""
    return uvloop.run(main)
