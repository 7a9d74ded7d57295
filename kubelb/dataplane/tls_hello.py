"""The server name (SNI) of a TLS ClientHello, read from the first bytes a client sends.

Input: the bytes received so far on a connection, untrusted. Output: `parse` says `More` (a
ClientHello may still follow: parse again once `at_least` bytes are in), `NOT_TLS` (these bytes
are no ClientHello, or one too large or malformed to route) or a `Hello` with the server name
(None when the client sent none).
The ClientHello may span several TLS records (RFC 8446 5.1 allows fragmented handshakes); only
`MAX_HELLO` bytes are ever looked at. Nothing here raises on any input: every length is checked
before it is used, so a peer sending garbage only gets its connection closed.

Only the ClientHello is parsed, never the rest of the handshake: a passthrough listener forwards
the bytes untouched, as Envoy's TLS inspector does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Envoy's TLS inspector reads at most 64 KiB of ClientHello (`max_client_hello_size`).
MAX_HELLO: Final = 64 * 1024
# A ClientHello split over more records than this is an attack, not a client.
MAX_RECORDS: Final = 32
# The largest record plaintext allowed (RFC 8446 5.1: 2^14), plus the slack some stacks send.
_MAX_RECORD: Final = (1 << 14) + 2048
_HANDSHAKE_RECORD: Final = 0x16
_CLIENT_HELLO: Final = 0x01
_SERVER_NAME_EXTENSION: Final = 0x0000
_HOST_NAME: Final = 0x00
# A DNS name is at most 253 characters (255 octets on the wire, RFC 1035 3.1).
_MAX_NAME: Final = 255


class _NotTLS:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_TLS"


NOT_TLS: Final = _NotTLS()


@dataclass(frozen=True, slots=True)
class More:
    """No verdict yet: parse again once at least `at_least` bytes have arrived."""

    at_least: int


@dataclass(frozen=True, slots=True)
class Hello:
    """A complete ClientHello; `server_name` lower-case, None when the client sent no SNI."""

    server_name: str | None


Verdict = Hello | More | _NotTLS


def parse(data: bytes | bytearray | memoryview) -> Verdict:
    """What the first bytes of a connection say about its TLS server name."""
    view = memoryview(data)
    try:
        message = _handshake_message(view)
        if not isinstance(message, memoryview):
            return message
        return _client_hello(message)
    except (IndexError, ValueError):  # an inconsistent length the checks below missed
        return NOT_TLS


def _handshake_message(view: memoryview) -> memoryview | More | _NotTLS:
    """The ClientHello handshake message (type and length stripped), joined from its records."""
    body = bytearray()
    at = records = 0
    needed: int | None = None
    while True:
        if len(view) - at < 5:
            return _more_or_not(view, at)
        records += 1
        if records > MAX_RECORDS:
            return NOT_TLS
        if view[at] != _HANDSHAKE_RECORD or view[at + 1] != 3:
            return NOT_TLS
        length = int.from_bytes(view[at + 3 : at + 5], "big")
        if length == 0 or length > _MAX_RECORD:
            return NOT_TLS
        if len(view) - at - 5 < length:
            end = at + 5 + length
            return More(end) if end <= MAX_HELLO else NOT_TLS
        body += view[at + 5 : at + 5 + length]
        at += 5 + length
        if needed is None and len(body) >= 4:
            if body[0] != _CLIENT_HELLO:
                return NOT_TLS
            needed = 4 + int.from_bytes(body[1:4], "big")
            if needed > MAX_HELLO:
                return NOT_TLS
        if needed is not None and len(body) >= needed:
            return memoryview(bytes(body[4:needed]))
        if at >= MAX_HELLO:
            return NOT_TLS


def _more_or_not(view: memoryview, at: int) -> More | _NotTLS:
    """A partial record header: More while what is there could still start a handshake record."""
    head = view[at:]
    if len(head) >= 1 and head[0] != _HANDSHAKE_RECORD:
        return NOT_TLS
    if len(head) >= 2 and head[1] != 3:
        return NOT_TLS
    return More(at + 5)


class _Reader:
    """Bounds-checked reads over one ClientHello; a short read raises ValueError."""

    __slots__ = ("at", "view")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.at = 0

    def skip(self, n: int) -> None:
        self.take(n)

    def take(self, n: int) -> memoryview:
        end = self.at + n
        if end > len(self.view):
            raise ValueError("short ClientHello")
        part = self.view[self.at : end]
        self.at = end
        return part

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int) -> memoryview:
        """A length-prefixed vector whose length takes `size` bytes."""
        return self.take(self.number(size))

    @property
    def left(self) -> int:
        return len(self.view) - self.at


def _client_hello(message: memoryview) -> Hello | _NotTLS:
    r = _Reader(message)
    r.skip(2 + 32)  # legacy_version, random
    r.vector(1)  # legacy_session_id
    r.vector(2)  # cipher_suites
    r.vector(1)  # legacy_compression_methods
    if r.left == 0:  # SSL 3.0-style hello without extensions
        return Hello(server_name=None)
    extensions = _Reader(r.vector(2))
    if r.left:
        return NOT_TLS
    seen: set[int] = set()
    name: str | None = None
    while extensions.left:
        kind = extensions.number(2)
        data = extensions.vector(2)
        if kind in seen:  # RFC 8446 4.2: at most one extension of each type
            return NOT_TLS
        seen.add(kind)
        if kind == _SERVER_NAME_EXTENSION:
            found = _server_name(data)
            if found is NOT_TLS:
                return NOT_TLS
            name = found if isinstance(found, str) else None
    return Hello(server_name=name)


def _server_name(data: memoryview) -> str | _NotTLS | None:
    """The host_name of a server_name extension (RFC 6066 3), lower-case."""
    outer = _Reader(data)
    names = _Reader(outer.vector(2))
    if outer.left:
        return NOT_TLS
    host: str | None = None
    while names.left:
        kind = names.number(1)
        value = names.vector(2)
        if kind != _HOST_NAME:
            continue
        if host is not None or not 0 < len(value) <= _MAX_NAME:
            return NOT_TLS
        raw = bytes(value)
        # Printable ASCII without spaces (A-labels): anything else cannot name a route.
        if not all(0x21 <= b <= 0x7E for b in raw):
            return NOT_TLS
        host = raw.decode("ascii").lower()
    return host
