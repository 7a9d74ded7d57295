"""Backpressure and read buffers shared by every data-plane protocol.

A `ReadBuffer` is one large buffer that all `BufferedProtocol`s of a loop read into; the bytes are
written straight to the peer transport as a memoryview. uvloop keeps a reference (no copy) to data
it could not send at once, so after such a partial write the shared buffer is handed over to the
transport and a fresh one is allocated (`after_write`). `Pausable` pairs a reading transport with
the transport it feeds: the writer's high-water mark pauses the reader, the low mark resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

logger = logging.getLogger(__name__)

READ_BUFFER_SIZE = 256 * 1024
# Per-transport write buffer: above HIGH the peer stops reading, below LOW it resumes.
WRITE_HIGH = 1024 * 1024
WRITE_LOW = 256 * 1024


class ReadBuffer:
    """A shared read buffer, replaced when a transport still holds a view of it."""

    __slots__ = ("size", "view")

    def __init__(self, size: int = READ_BUFFER_SIZE) -> None:
        self.size = size
        self.view = memoryview(bytearray(size))

    def after_write(self, transport: asyncio.WriteTransport) -> None:
        """Call after writing a view of this buffer: pending data pins the old buffer."""
        if transport.get_write_buffer_size():
            self.view = memoryview(bytearray(self.size))


def tune(transport: asyncio.BaseTransport) -> None:
    """Large write buffers for throughput, and TCP_NODELAY for latency."""
    # uvloop's transports implement the interface without subclassing asyncio's classes.
    set_limits = getattr(transport, "set_write_buffer_limits", None)
    if set_limits is not None:
        set_limits(high=WRITE_HIGH, low=WRITE_LOW)
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        # The peer may already have reset the connection; the read path will notice.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def peer_ip(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return ""
