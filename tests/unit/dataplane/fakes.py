"""A transport that records what a protocol does, for protocol tests without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from kubelb.dataplane import context, flow_control, http_upstream, upstreams
from kubelb.ir import proxy


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: tuple[str, int] = ("127.0.0.9", 5555)) -> None:
        super().__init__()
        self.written = bytearray()
        self.paused = False
        self.closed = False
        self.aborted = False
        self.eof = False
        self.pending = 0
        self.peer = peer
        self.protocol: asyncio.BaseProtocol | None = None  # set by `set_protocol`
        self.unsent_after_write = 0  # > 0: a write leaves that much queued (a partial send)

    def write(self, data: Any) -> None:
        self.written += bytes(data)
        self.pending += self.unsent_after_write

    def get_write_buffer_size(self) -> int:
        return self.pending

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("127.0.0.1", 8080)}.get(name, default)


def listener_context(listener: proxy.Listener, clusters: list[proxy.Cluster],
                     **options: Any) -> context.ListenerContext:  # fmt: skip
    states = {c.name: upstreams.ClusterState(c) for c in clusters}
    for s in states.values():
        s._rebuild()
    return context.build(
        listener, states, options=context.Options(**options),
        tracker=context.Tracker(100), buffer=flow_control.ReadBuffer(),
        clock=asyncio.get_running_loop().time,
        pool=http_upstream.Pool(size=4, idle_seconds=60),
    )  # fmt: skip


def feed(protocol: asyncio.BufferedProtocol | asyncio.Protocol, data: bytes) -> None:
    if not isinstance(protocol, asyncio.BufferedProtocol):
        protocol.data_received(data)
        return
    buf = memoryview(protocol.get_buffer(len(data)))
    buf[: len(data)] = data
    protocol.buffer_updated(len(data))
