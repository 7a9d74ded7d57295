"""kubelb.util.ports: ports from the kernel, or in turn from a confined range, free when handed
out on every host and for every socket kind asked for."""

from __future__ import annotations

import contextlib
import socket

import pytest

from kubelb.util import ports

BOTH = (socket.SOCK_STREAM, socket.SOCK_DGRAM)


@pytest.fixture
def unconfined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_confined", None)


@pytest.fixture
def span(monkeypatch: pytest.MonkeyPatch) -> range:
    """A confined range of free ports for the test, this process's own restored afterwards."""
    monkeypatch.setattr(ports, "_confined", ports.confined())
    monkeypatch.setattr(ports, "_cursor", 0)
    low, _ = ports.ephemeral_range()
    ports.confine(low - 300, low - 200)
    span = ports.confined()
    assert span is not None
    return span


def bindable(port: int, host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


@pytest.mark.usefixtures("unconfined")
def test_unconfined_ports_come_from_the_kernel_and_are_free() -> None:
    low, high = ports.ephemeral_range()
    port = ports.free_port("127.0.0.1", "127.0.0.2", kinds=BOTH)
    assert low <= port <= high
    assert all(bindable(port, h, k) for h in ("127.0.0.1", "127.0.0.2") for k in BOTH)


@pytest.mark.usefixtures("unconfined")
def test_ports_drawn_together_differ() -> None:
    drawn = ports.free_ports(20, "127.0.0.1")
    assert len(set(drawn)) == 20


def test_confined_ports_come_in_turn_and_skip_taken_ones(span: range) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", span[1]))
        drawn = [ports.free_port() for _ in range(3)]
    assert drawn == [span[0], span[2], span[3]]


def test_a_confined_port_is_free_for_every_kind_asked(span: range) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", span[1]))
        assert ports.free_port() == span[0]  # TCP only
        assert ports.free_port(kinds=BOTH) == span[2]
        assert ports.free_port() == span[3]


def test_confined_ports_wrap_around_and_run_out(span: range) -> None:
    assert ports.free_ports(len(span), "127.0.0.1") == list(span)
    with socket.socket() as held:
        held.bind(("127.0.0.1", span[0]))
        assert ports.free_port() == span[1]  # after the last one, the first ones again
    taken = []
    try:
        for port in span:
            s = socket.socket()
            taken.append(s)
            with contextlib.suppress(OSError):  # taken already
                s.bind(("127.0.0.1", port))
        with pytest.raises(OSError, match="no free port in"):
            ports.free_port()
    finally:
        for s in taken:
            s.close()


def test_workers_get_disjoint_equal_shares() -> None:
    assert [ports.share(i, 3, 22000, 30000) for i in range(3)] == [
        (22000, 24666),
        (24666, 27332),
        (27332, 29998),
    ]
    with pytest.raises(ValueError, match="no share 2 of 2"):
        ports.share(2, 2, 22000, 30000)


def test_confine_refuses_what_is_not_a_range() -> None:
    with pytest.raises(ValueError, match="not a port range"):
        ports.confine(5000, 5000)
