"""One HTTP/1.1 request on a client connection, and where it is in its life: parsed head, body
framing, its route and upstream target, a local answer waiting for the rest of the request, and
the copies going to mirrors. Plain state shared by `http` (which drives it) and `http_actions`.
"""

from __future__ import annotations

from kubelb.dataplane import context, upstreams


class Exchange:
    """One request and where it is in its life."""

    __slots__ = (
        "body",
        "body_size",
        "chunked",
        "complete",
        "head",
        "headers",
        "keep_alive",
        "local",
        "method",
        "mirror_body",
        "mirror_size",
        "mirrors",
        "pending",
        "retried",
        "route",
        "start",
        "started",
        "target",
        "try_start",
        "upgrade",
        "url",
        "version",
    )

    def __init__(self, start: float) -> None:
        self.start = start
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = b""
        self.version = "1.1"
        self.head = b""
        self.keep_alive = True
        self.upgrade: bytes | None = None
        self.chunked = False
        self.body_size = 0
        # Request bytes (framed) waiting for the upstream connection.
        self.pending: list[bytes] = []
        self.body: list[bytes] = []
        self.complete = False
        self.started = False
        self.retried = False
        self.target: upstreams.Target | None = None
        self.route: context.Route | None = None
        # A local answer (status, headers) waiting for the rest of the request.
        self.local: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self.try_start = 0.0
        # Mirroring: the head for the mirrors, their targets, and the body copied so far.
        self.mirrors: list[tuple[bytes, upstreams.Target]] | None = None
        self.mirror_body: list[bytes] | None = None
        self.mirror_size = 0
