"""The xDS CA for a long-lived process: every operation that needs `cryptography` runs in a
short-lived child process (`python -m kubelb.pki`), so the manager never loads it (10-15 MiB
resident for good, once imported).

A child costs about a tenth of a second; the manager needs one for the CA at start, for the
server certificate, and for each leaf it issues (a few per tenant and day). Deciding whether a
leaf is due needs no child once the leaf is known: what a certificate says (`model.CertInfo`) is
kept for those this authority issued or inspected, so the periodic rotation check and every
handshake's look at the server certificate stay in process. Blocking: call it from a thread.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import Any

from kubelb.pki import identity, model

Json = dict[str, Any]

TIMEOUT = 60.0  # seconds; a loaded host takes well under one to start Python and sign
MAX_KNOWN = 4096  # certificates whose CertInfo is kept (a few per tenant)
# The child imports what this process imports: it runs with this process's module path.
_BOOT = "import runpy, sys; sys.path[:] = sys.argv[1:]; runpy.run_module('kubelb.pki', run_name='__main__')"  # noqa: E501


class ChildError(OSError):
    """The child process failed (not started, crashed, timed out, or answered nonsense)."""


def run(request: Json) -> list[Json]:
    """The answers of `python -m kubelb.pki` to `request` (see that module). Raises ValueError
    when the child refuses the CA or an argument, ChildError when it fails."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _BOOT, *sys.path], input=json.dumps(request).encode(),
            capture_output=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.SubprocessError as exc:
        raise ChildError(f"the xDS CA's child process: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise ChildError(f"the xDS CA's child process exited with {done.returncode}: {tail}")
    try:
        answer = json.loads(done.stdout)
    except ValueError as exc:
        raise ChildError(f"the xDS CA's child process answered no JSON: {exc}") from exc
    if "error" in answer:
        raise ValueError(answer["error"])
    results: list[Json] = answer["results"]
    return results


def _info(data: Json | None) -> model.CertInfo | None:
    if data is None:
        return None
    return model.CertInfo(signed=bool(data["signed"]), uris=tuple(data["uris"]),
                          not_before=datetime.datetime.fromisoformat(data["not_before"]),
                          not_after=datetime.datetime.fromisoformat(data["not_after"]))  # fmt: skip


def _op(name: str, validity: datetime.timedelta, now: datetime.datetime | None,
        **args: Any) -> Json:  # fmt: skip
    op = {"op": name, "validity": validity.total_seconds(), **args}
    if now is not None:
        op["now"] = now.isoformat()
    return op


def _digest(cert_pem: bytes) -> bytes:
    return hashlib.sha256(cert_pem).digest()


class IsolatedAuthority:
    """A `model.Authority` whose signing key is used by child processes only. Build it with
    `create()` or `from_pem()` (which checks the pair); the constructor trusts its arguments."""

    def __init__(self, cert_pem: bytes, key_pem: bytes) -> None:
        self.cert_pem = cert_pem
        self._key_pem = key_pem
        self.children = 0  # child processes run so far
        self._known: collections.OrderedDict[bytes, model.CertInfo | None] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()  # rotation and gRPC's handshake threads share the cache

    @classmethod
    def create(cls, *, validity: datetime.timedelta = model.CA_VALIDITY,
               now: datetime.datetime | None = None) -> IsolatedAuthority:  # fmt: skip
        [created] = run({"ops": [_op("create", validity, now)]})
        authority = cls(created["cert"].encode(), created["key"].encode())
        authority.children = 1
        return authority

    @classmethod
    def from_pem(cls, cert: bytes, key: bytes) -> IsolatedAuthority:
        """Raises ValueError when they are not a CA certificate and its key."""
        authority = cls(cert, key)
        authority._run([{"op": "check"}])
        return authority

    def key_pem(self) -> bytes:
        return self._key_pem

    def issue_node(self, node_id: str, *, validity: datetime.timedelta = model.LEAF_VALIDITY,
                   now: datetime.datetime | None = None) -> model.Leaf:  # fmt: skip
        identity.node_uri(node_id)  # refuses what is no node id before a child starts
        return self._issue(_op("node", validity, now, node_id=node_id))

    def issue_server(self, dns_names: Iterable[str] = (), ips: Iterable[str] = (), *,
                     validity: datetime.timedelta = model.LEAF_VALIDITY,
                     now: datetime.datetime | None = None) -> model.Leaf:  # fmt: skip
        return self._issue(_op("server", validity, now, dns=list(dns_names), ips=list(ips)))

    def info(self, cert_pem: bytes | None) -> model.CertInfo | None:
        """What `cert_pem` says (None: none, or unreadable); a child reads it the first time."""
        if not cert_pem:
            return None
        digest = _digest(cert_pem)
        with self._lock:
            if digest in self._known:
                self._known.move_to_end(digest)
                return self._known[digest]
        [answer] = self._run([{"op": "inspect", "cert": cert_pem.decode(errors="replace")}])
        info = _info(answer["info"])
        self._remember(digest, info)
        return info

    def due(self, cert_pem: bytes | None, *, node_id: str | None = None,
            now: datetime.datetime | None = None) -> bool:  # fmt: skip
        node_uri = identity.node_uri(node_id) if node_id is not None else None
        return model.due(self.info(cert_pem), node_uri=node_uri, now=now)

    def _issue(self, op: Json) -> model.Leaf:
        [leaf] = self._run([op])
        info = _info(leaf["info"])
        cert = leaf["cert"].encode()
        self._remember(_digest(cert), info)
        return model.Leaf(cert, leaf["key"].encode(), leaf["ca"].encode(),
                          None if info is None else info.not_after)  # fmt: skip

    def _remember(self, digest: bytes, info: model.CertInfo | None) -> None:
        with self._lock:
            self._known[digest] = info
            self._known.move_to_end(digest)
            while len(self._known) > MAX_KNOWN:
                self._known.popitem(last=False)

    def _run(self, ops: list[Json]) -> list[Json]:
        with self._lock:
            self.children += 1
        ca = {"cert": self.cert_pem.decode(), "key": self._key_pem.decode()}
        return run({"ca": ca, "ops": ops})
