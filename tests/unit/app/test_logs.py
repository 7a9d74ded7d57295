"""Upstream's zap flags mapped onto kubelb's logging (issue 13), and JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
from typing import cast

import pytest

from kubelb.app import logs
from kubelb.kube import client, controller, errors as kerrors, informer, objects, resources, watches
from kubelb.util import logfields


def options(*argv: str) -> logs.Options:
    parser = argparse.ArgumentParser()
    logs.add_arguments(parser)
    return logs.options_from_args(parser.parse_args(list(argv)))


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("error", logging.ERROR),
        ("panic", logging.CRITICAL),
        ("INFO", logging.INFO),
        ("1", logging.DEBUG),
        ("5", logging.DEBUG),
    ],
)
def test_zap_log_level(value, level):
    assert options(f"--zap-log-level={value}").level == level


@pytest.mark.parametrize("value", ["0", "-1", "loud", ""])
def test_bad_zap_log_level_is_refused(value, capsys):
    with pytest.raises(SystemExit):
        options(f"--zap-log-level={value}")
    assert "invalid log level" in capsys.readouterr().err


def test_defaults_keep_kubelbs_console_lines():
    assert options() == logs.Options(level=logging.INFO, encoder="console")


def test_zap_log_level_wins_over_log_level():
    assert options("--log-level=debug", "--zap-log-level=error").level == logging.ERROR
    assert options("--log-level=warning").level == logging.WARNING


def test_zap_devel_is_debug_with_stacks_from_warnings():
    devel = options("--zap-devel")
    assert (devel.level, devel.encoder, devel.stacktrace_level) == (
        logging.DEBUG,
        "console",
        logging.WARNING,
    )
    # an explicit level and stacktrace level still win
    chosen = options("--zap-devel=true", "--zap-log-level=info", "--zap-stacktrace-level=error")
    assert (chosen.level, chosen.stacktrace_level) == (logging.INFO, logging.ERROR)
    assert options("--zap-devel=false").level == logging.INFO


def test_encoder_stacktrace_and_time_encoding():
    o = options("--zap-encoder=json", "--zap-stacktrace-level=panic", "--zap-time-encoding=nano")
    assert (o.encoder, o.stacktrace_level, o.time_encoding) == ("json", logging.CRITICAL, "nano")


@pytest.mark.parametrize("flag", ["--zap-encoder=xml", "--zap-time-encoding=unix"])
def test_unknown_choices_are_refused(flag):
    with pytest.raises(SystemExit):
        options(flag)


def test_time_encodings():
    created = 1_700_000_000.25
    assert logs.format_time(created, "epoch") == created
    assert logs.format_time(created, "millis") == created * 1000
    assert logs.format_time(created, "nano") == 1_700_000_000_250_000_000
    assert str(logs.format_time(created, "rfc3339")).startswith("2023-11-")
    assert str(logs.format_time(created, "iso8601")).endswith(
        str(logs.format_time(created, "rfc3339"))[-6:]
    )  # carries the UTC offset
    assert ".250" in str(logs.format_time(created, "iso8601"))
    assert ".250000" in str(logs.format_time(created, "rfc3339nano"))


@pytest.fixture
def captured():
    """The root logger configured by `logs.setup`, writing to a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    buffer = io.StringIO()

    def configure(o: logs.Options) -> io.StringIO:
        logs.setup(o)
        for handler in root.handlers:
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(buffer)
        return buffer

    yield configure
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])


def test_json_lines_carry_the_fields(captured):
    out = captured(logs.Options(encoder="json", time_encoding="epoch"))
    log = logging.getLogger("kubelb.test")
    log.info("reconciled %s", "web\nINFO forged", extra={"tenant": "tenant-a", "object": "a/web"})
    log.debug("below the level")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra={"reason": "Boom"})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "info"
    assert first["logger"] == "kubelb.test"
    assert first["msg"] == "reconciled web\nINFO forged"
    assert (first["tenant"], first["object"]) == ("tenant-a", "a/web")
    assert "reason" not in first
    assert isinstance(first["ts"], float)
    assert first["caller"].startswith("test_logs.py:")
    assert (second["level"], second["reason"]) == ("error", "Boom")
    assert "ValueError: boom" in second["error"]


def test_stacktrace_level_appends_the_callers_stack(captured):
    out = captured(logs.Options(encoder="json", stacktrace_level=logging.ERROR))
    log = logging.getLogger("kubelb.test")
    log.warning("no stack")
    log.error("with stack")
    warning, error = (json.loads(line) for line in out.getvalue().splitlines())
    assert "stacktrace" not in warning
    assert "test_stacktrace_level_appends_the_callers_stack" in error["stacktrace"]
    assert "logging" not in error["stacktrace"].splitlines()[-1]


def test_console_keeps_one_line_per_record(captured):
    out = captured(logs.Options(time_encoding="rfc3339"))
    logging.getLogger("kubelb.test").warning("a\nb", extra={"tenant": "t"})
    [line] = out.getvalue().splitlines()
    assert line.endswith("WARNING kubelb.test: a\\nb")


def test_scope_and_process_fields_name_tenant_and_object(captured):
    out = captured(logs.Options(encoder="json"))
    root = logging.getLogger()
    for handler in root.handlers:  # as the agent's set-up: its one tenant on every record
        for f in handler.filters:
            if isinstance(f, logs.FieldsFilter):
                f.fields = {"tenant": "tenant-shop"}
    log = logging.getLogger("kubelb.test")

    async def reconcile(key: str, tenant: str | None) -> None:
        with logfields.scope(object=key, tenant=tenant):
            await asyncio.sleep(0)  # the other reconcile runs in between
            log.info("reconciling")

    async def both() -> None:
        await asyncio.gather(reconcile("a/web", "tenant-a"), reconcile("b/api", None))

    asyncio.run(both())
    log.info("outside", extra={"object": "given"})
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    fields = sorted((line["msg"], line["object"], line["tenant"]) for line in lines)
    assert fields == [
        ("outside", "given", "tenant-shop"),
        ("reconciling", "a/web", "tenant-a"),
        ("reconciling", "b/api", "tenant-shop"),
    ]
    assert logfields.current() == {}


class Reconciler:
    """Logs during its reconcile, then fails."""

    name = "fields"
    primary = watches.Watch(resource=resources.LOAD_BALANCERS)
    watches = ()

    async def reconcile(self, key: objects.ObjectKey) -> controller.Result:
        logging.getLogger("kubelb.test").info("reconciling")
        raise kerrors.ApiError("conflict", status=409, reason="Conflict")


def test_a_controllers_reconcile_lines_name_tenant_object_and_reason(captured):
    out = captured(logs.Options(encoder="json"))
    informers = informer.Informers(cast(client.Client, None))
    ctrl = controller.Controller(Reconciler(), informers, tenant_of=lambda key: key.namespace)

    async def once() -> None:
        await ctrl._reconcile(ctrl.queue, objects.ObjectKey("tenant-a", "web"))
        ctrl.queue.shut_down()

    asyncio.run(once())
    inside, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert (inside["msg"], inside["tenant"], inside["object"]) == (
        "reconciling",
        "tenant-a",
        "tenant-a/web",
    )
    assert (failed["level"], failed["tenant"], failed["object"], failed["reason"]) == (
        "warn",
        "tenant-a",
        "tenant-a/web",
        "Conflict",
    )
