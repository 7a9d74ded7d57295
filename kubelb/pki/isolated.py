"""The xDS CA for a long-lived process: every operation that needs `cryptography` runs in a
child process (`python -m kubelb.pki`), so the manager never loads it (10-15 MiB resident for
good, once imported).

The child starts when a certificate is needed and exits after `IDLE_SECONDS` without one: a
burst (the manager's start, tenants' first LoadBalancers) pays one start of Python and
`cryptography` (a tenth of a second, more on a loaded host), each certificate then a few
milliseconds. Deciding whether a leaf is due needs no child once the leaf is known: what a
certificate says (`model.CertInfo`) is kept for those this authority issued or inspected, so
the periodic rotation check and every handshake's look at the server certificate stay in
process. Blocking: call it from a thread.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import hashlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from kubelb.pki import identity, model

Json = dict[str, Any]

TIMEOUT = 60.0  # seconds for one answer; a loaded host takes well under one to start and sign
IDLE_SECONDS = 10.0  # the child exits after this long without a request
MAX_KNOWN = 4096  # certificates whose CertInfo is kept (a few per tenant)
# The child imports what this process imports: it runs with this process's module path.
_BOOT = (
    "import runpy, sys; idle = sys.argv[1]; sys.path[:] = sys.argv[2:];"
    "sys.argv[1:] = ['--idle', idle]; runpy.run_module('kubelb.pki', run_name='__main__')"
)


class ChildError(OSError):
    """The child process failed (not started, crashed, timed out, or answered nonsense)."""


class _Gone(Exception):
    """The child exited before answering (after its idle time, or it crashed)."""


class Child:
    """One `python -m kubelb.pki` at a time, started on demand; requests are serialised."""

    def __init__(self, idle: float = IDLE_SECONDS) -> None:
        self.idle = idle
        self.started = 0  # child processes started so far
        self.requests = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def ask(self, request: Json) -> Json:
        """The child's answer to `request`. Raises ChildError when it fails twice in a row (a
        child that exits idle just as a request comes is replaced once)."""
        line = json.dumps(request).encode() + b"\n"
        with self._lock:
            self.requests += 1
            for attempt in (1, 2):
                process = self._running()
                try:
                    return self._exchange(process, line)
                except _Gone as exc:
                    code = self._discard()
                    if attempt == 2:
                        raise ChildError(f"the xDS CA's child process exited with {code}") from exc
        raise AssertionError("unreachable")

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The current child, if any (it may have exited since)."""
        return self._process

    def stop(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self) -> int | None:
        """Stop the current child (if it still runs) and close its pipes; its exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        code = process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a write the child never read
                    pipe.close()
        return code

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._discard()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(self.idle), *sys.path],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
            )  # fmt: skip
        except OSError as exc:
            raise ChildError(f"the xDS CA's child process did not start: {exc}") from exc
        self.started += 1
        return self._process

    def _exchange(self, process: subprocess.Popen[bytes], line: bytes) -> Json:
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(line)
            process.stdin.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Gone from exc
        fd = process.stdout.fileno()
        deadline = time.monotonic() + TIMEOUT
        answer = b""
        while not answer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._discard()
                raise ChildError(f"the xDS CA's child process did not answer in {TIMEOUT:.0f}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _Gone
            answer += chunk
        try:
            parsed: Json = json.loads(answer)
        except ValueError as exc:
            raise ChildError(f"the xDS CA's child process answered no JSON: {exc}") from exc
        return parsed


CHILD = Child()


def run(request: Json) -> list[Json]:
    """The answers of `python -m kubelb.pki` to `request` (see that module). Raises ValueError
    when the child refuses the CA or an argument, ChildError when it fails."""
    answer = CHILD.ask(request)
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
        self.child_requests = 0  # operations this authority asked the child for
        self._known: collections.OrderedDict[bytes, model.CertInfo | None] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()  # rotation and gRPC's handshake threads share the cache

    @classmethod
    def create(cls, *, validity: datetime.timedelta = model.CA_VALIDITY,
               now: datetime.datetime | None = None) -> IsolatedAuthority:  # fmt: skip
        [created] = run({"ops": [_op("create", validity, now)]})
        authority = cls(created["cert"].encode(), created["key"].encode())
        authority.child_requests = 1
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
            self.child_requests += 1
        ca = {"cert": self.cert_pem.decode(), "key": self._key_pem.decode()}
        return run({"ca": ca, "ops": ops})
