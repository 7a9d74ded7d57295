"""The manager's xDS CA signs in a child process: what it issues is what the in-process CA
issues, a known certificate's due check needs no child, and failures are errors of their kind
(that the manager never loads `cryptography` is checked in tests/unit/test_startup_imports.py)."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Iterator

import pytest

from kubelb.pki import ca, identity, isolated

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def authority() -> isolated.IsolatedAuthority:
    return isolated.IsolatedAuthority.create()


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch) -> Iterator[isolated.Child]:
    """A child process of this test's own (stopped after it), not the shared one."""
    own = isolated.Child(idle=0.2)
    monkeypatch.setattr(isolated, "CHILD", own)
    yield own
    own.stop()


def test_leaves_chain_to_the_ca_and_name_their_holder(
    authority: isolated.IsolatedAuthority,
) -> None:
    same = ca.Authority.from_pem(authority.cert_pem, authority.key_pem())
    node = authority.issue_node("tenant-a")
    server = authority.issue_server(["envoycp.kubelb.svc"], ["127.0.0.1"])
    assert same.signed(ca.Leaf(node.cert, b"", b"").certificate)
    assert ca.uris(ca.Leaf(node.cert, b"", b"").certificate) == [identity.node_uri("tenant-a")]
    assert ca.uris(ca.Leaf(server.cert, b"", b"").certificate)[0] == identity.SERVER_URI
    assert node.ca == authority.cert_pem
    assert node.not_after == ca.Leaf(node.cert, b"", b"").certificate.not_valid_after_utc


def test_due_like_the_in_process_ca(authority: isolated.IsolatedAuthority) -> None:
    same = ca.Authority.from_pem(authority.cert_pem, authority.key_pem())
    leaf = authority.issue_node("t", validity=datetime.timedelta(hours=3), now=NOW)
    stranger = ca.Authority.create().issue_node("t").cert
    cases = [
        (leaf.cert, "t", NOW),
        (leaf.cert, None, NOW + datetime.timedelta(minutes=115)),
        (leaf.cert, None, NOW + datetime.timedelta(hours=2)),
        (leaf.cert, "other", NOW),
        (stranger, "t", NOW),
        (None, None, NOW),
        (b"not a certificate", None, NOW),
    ]
    got = [authority.due(cert, node_id=node, now=now) for cert, node, now in cases]
    assert got == [same.due(cert, node_id=node, now=now) for cert, node, now in cases]
    assert got == [False, False, True, True, True, True, True]


def test_a_known_certificate_needs_no_child() -> None:
    authority = isolated.IsolatedAuthority.create()
    leaf = authority.issue_node("t")
    stranger = ca.Authority.create().issue_node("t").cert
    before = authority.child_requests
    assert not authority.due(leaf.cert, node_id="t")  # issued here: known
    assert authority.child_requests == before
    assert authority.due(stranger, node_id="t")
    assert authority.due(stranger, node_id="t")
    assert authority.child_requests == before + 1  # read once, then known


def test_a_key_of_another_ca_is_refused(authority: isolated.IsolatedAuthority) -> None:
    other = isolated.IsolatedAuthority.create()
    with pytest.raises(ValueError, match="does not match"):
        isolated.IsolatedAuthority.from_pem(authority.cert_pem, other.key_pem())
    with pytest.raises(ValueError, match="PEM"):
        isolated.IsolatedAuthority.from_pem(b"not a certificate", other.key_pem())
    again = isolated.IsolatedAuthority.from_pem(authority.cert_pem, authority.key_pem())
    assert not again.due(authority.issue_node("t").cert, node_id="t")


def test_a_failing_child_is_an_os_error(
    authority: isolated.IsolatedAuthority, child: isolated.Child, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError, so rotation logs it and tries again later."""
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(isolated.ChildError, match="exited with 1"):
        authority.issue_node("t")
    assert issubclass(isolated.ChildError, OSError)


def test_an_idle_child_exits_and_the_next_request_starts_another(child: isolated.Child) -> None:
    authority = isolated.IsolatedAuthority.create()
    authority.issue_node("a")
    assert child.started == 1  # one child for both
    assert child.process is not None
    assert child.process.wait(timeout=60) == 0  # it exits by itself once idle
    authority.issue_node("b")
    assert child.started == 2


def test_a_child_that_leaves_without_answering_is_replaced_once(
    authority: isolated.IsolatedAuthority, child: isolated.Child, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child that exits just as a request comes (its idle time is up) costs no error."""
    leaving = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    monkeypatch.setattr(child, "_process", leaving)
    assert not authority.due(authority.issue_node("t").cert, node_id="t")
    assert leaving.returncode == 0
