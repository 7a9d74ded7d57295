"""Tiny real backends on 127.0.0.x that say who they are."""

from __future__ import annotations

import asyncio
import contextlib
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class EchoProtocol(asyncio.Protocol):
    """Echoes every chunk prefixed with the backend's name."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(self.name + b":" + data)


class UDPEchoProtocol(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name + b":" + data, addr)


@contextlib.asynccontextmanager
async def tcp_echo(name: str, host: str, port: int) -> AsyncIterator[asyncio.Server]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: EchoProtocol(name), host, port)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def udp_echo(name: str, host: str, port: int) -> AsyncIterator[asyncio.DatagramTransport]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: UDPEchoProtocol(name), local_addr=(host, port)
    )
    try:
        yield transport
    finally:
        transport.close()


class Connection:
    """A client TCP connection that stays open across configuration changes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def roundtrip(self, payload: bytes) -> bytes:
        self.writer.write(payload)
        await self.writer.drain()
        async with asyncio.timeout(10):
            return await self.reader.readuntil(payload)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def request(host: str, port: int, payload: bytes = b"ping") -> bytes:
    conn = await Connection.open(host, port)
    try:
        return await conn.roundtrip(payload)
    finally:
        await conn.close()


async def refused(host: str, port: int) -> None:
    """Passes when nothing accepts connections on host:port any more."""
    try:
        conn = await Connection.open(host, port)
    except OSError:
        return
    await conn.close()
    raise AssertionError(f"{host}:{port} still accepts connections")


async def udp_request(host: str, port: int, payload: bytes = b"ping") -> bytes:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not answer.done():
                answer.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    try:
        transport.sendto(payload)
        async with asyncio.timeout(2):
            return await answer
    finally:
        transport.close()


async def eventually(check: Callable[[], Awaitable[T]], what: str, deadline: float = 60.0) -> T:
    """Retry an async `check()` until it returns without raising; re-raise the last failure."""
    last: BaseException | None = None
    try:
        async with asyncio.timeout(deadline):
            while True:
                try:
                    return await check()
                except (OSError, AssertionError, TimeoutError, asyncio.IncompleteReadError) as e:
                    last = e
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}: {last!r}") from last
