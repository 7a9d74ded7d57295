"""Backends standing in for a tenant's NodePorts, and clients that go through the load balancer.

A backend listens on a node's address and a Service's nodePort (127.0.0.x only) and answers
every read with `<tag>:<data>`, so a client can tell which node served it. With `proxy`, each
connection must start with a PROXY protocol v2 header, parsed here independently of kubelb's own
code; the source address it names is recorded. UDP backends answer each datagram the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import cast

from kubelb.util import ports

logger = logging.getLogger(__name__)

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_PROXY_COMMAND = 0x1
_INET_STREAM = 0x11
EXCHANGE_LIMIT = 2.0


@dataclass
class Backend:
    tag: str
    host: str
    port: int
    proxy: bool = False
    connections: int = 0  # accepted, health checks included
    answered: int = 0  # reads answered (health-check connections send nothing)
    proxy_sources: list[tuple[str, int]] = field(default_factory=list)
    bad_headers: list[bytes] = field(default_factory=list)


def parse_proxy_v2(header: bytes, body: bytes) -> tuple[str, int] | None:
    """The (source address, port) of a PROXY v2 header (16 bytes + body); None for LOCAL (health
    checks). Raises ValueError for anything that is not a v2 header over TCP/IPv4."""
    if header[:12] != PROXY_V2_SIGNATURE or header[12] >> 4 != 2:
        raise ValueError("not a PROXY protocol v2 header")
    if header[12] & 0xF != _PROXY_COMMAND:
        return None
    if header[13] != _INET_STREAM or len(body) < 12:
        raise ValueError(f"unexpected family/protocol {header[13]:#x}")
    source = str(ipaddress.IPv4Address(body[:4]))
    (source_port,) = struct.unpack("!H", body[8:10])
    return source, source_port


@contextlib.asynccontextmanager
async def tcp_backend(backend: Backend) -> AsyncIterator[Backend]:
    handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers[task] = writer
        backend.connections += 1
        try:
            if backend.proxy and not await _read_proxy_header(backend, reader):
                return
            while data := await reader.read(65536):
                backend.answered += 1
                writer.write(f"{backend.tag}:".encode() + data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass  # health checks connect and leave; aborted at shutdown
        finally:
            handlers.pop(task, None)
            writer.close()

    server = await asyncio.start_server(handle, backend.host, backend.port)
    try:
        yield backend
    finally:
        server.close()
        # Abort rather than cancel: a cancelled handler makes asyncio log an error.
        for writer in list(handlers.values()):
            writer.transport.abort()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def _read_proxy_header(backend: Backend, reader: asyncio.StreamReader) -> bool:
    """Read and record the PROXY v2 header; False when it is malformed (then hang up)."""
    header = await reader.readexactly(16)
    body = await reader.readexactly(struct.unpack("!H", header[14:16])[0])
    try:
        source = parse_proxy_v2(header, body)
    except ValueError:
        backend.bad_headers.append(header + body)
        return False
    if source is not None:
        backend.proxy_sources.append(source)
    return True


class _UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: CPython 3.11's selector transport does not subclass it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        assert self.transport is not None
        self.backend.answered += 1
        self.transport.sendto(f"{self.backend.tag}:".encode() + data, addr)


@contextlib.asynccontextmanager
async def udp_backend(backend: Backend) -> AsyncIterator[Backend]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _UDPEcho(backend), local_addr=(backend.host, backend.port)
    )
    try:
        yield backend
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def node_backends(
    nodes: Mapping[str, str],
    node_port: int,
    *,
    udp: bool = False,
    proxy: bool = False,
    label: str = "",
) -> AsyncIterator[dict[str, Backend]]:
    """One backend per node (name -> address) on `node_port`, tagged `<label><node name>`;
    yields node name -> Backend."""
    async with contextlib.AsyncExitStack() as stack:
        started = {}
        for name, address in sorted(nodes.items()):
            backend = Backend(f"{label}{name}", address, node_port, proxy=proxy)
            serve = udp_backend(backend) if udp else tcp_backend(backend)
            started[name] = await stack.enter_async_context(serve)
        yield started


async def exchange(
    host: str, port: int, payload: bytes, *, source: str | None = None
) -> bytes | None:
    """One connection through the load balancer: send, read one answer; None when nothing
    answers (yet): refused, reset, closed, or silent."""
    try:
        async with asyncio.timeout(EXCHANGE_LIMIT):
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(source, 0) if source else None
            )
            try:
                writer.write(payload)
                await writer.drain()
                return await reader.read(65536) or None
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return None


def free_port(hosts: tuple[str, ...], *, udp_too: bool = False) -> int:
    """A port free for TCP (and UDP with `udp_too`) on every address in `hosts` a moment ago."""
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp_too else (socket.SOCK_STREAM,)
    return ports.free_port(*hosts, kinds=kinds)


def served_by(answer: bytes | None) -> str | None:
    """The tag of the backend that produced `answer`."""
    return answer.split(b":", 1)[0].decode() if answer and b":" in answer else None


class _UDPClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def udp_exchange(host: str, port: int, payload: bytes) -> bytes | None:
    """One datagram to the load balancer and its answer; None when none comes back in time."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _UDPClient, local_addr=("127.0.0.1", 0), remote_addr=(host, port)
    )
    try:
        transport.sendto(payload)
        async with asyncio.timeout(EXCHANGE_LIMIT):
            return await protocol.answer
    except (OSError, TimeoutError):
        return None
    finally:
        transport.close()


class Connection:
    """A client connection kept open across steps (e.g. across a manager restart)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, *, source: str | None = None) -> Connection:
        reader, writer = await asyncio.open_connection(
            host, port, local_addr=(source, 0) if source else None
        )
        return cls(reader, writer)

    @property
    def local(self) -> tuple[str, int]:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def roundtrip(self, payload: bytes) -> bytes | None:
        try:
            async with asyncio.timeout(EXCHANGE_LIMIT):
                self.writer.write(payload)
                await self.writer.drain()
                return await self.reader.read(65536) or None
        except (OSError, TimeoutError):
            return None

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
