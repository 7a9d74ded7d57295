import io
import logging

from kubelb.util import logsafe


def test_printable_text_is_shown_as_is():
    assert logsafe.shown("shop/web") == "shop/web"
    assert logsafe.shown(42) == "42"


def test_control_characters_are_escaped():
    assert logsafe.shown("web\nERROR forged") == "'web\\nERROR forged'"
    assert logsafe.shown("a\rb\x1b[31m") == "'a\\rb\\x1b[31m'"


def test_long_text_is_cut():
    out = logsafe.shown("a" * 65536)
    assert len(out) < 400
    assert out.endswith("(65536 characters)")


def test_formatter_keeps_one_record_on_one_line_but_not_the_traceback():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logsafe.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test_logsafe")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("LoadBalancer %s: refused", "web\nERROR forged")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed %s", "x\ny")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "WARNING LoadBalancer web\\nERROR forged: refused"
    assert lines[1] == "ERROR failed x\\ny"
    assert lines[2] == "Traceback (most recent call last):"
    assert not any(line.startswith("ERROR forged") for line in lines)
