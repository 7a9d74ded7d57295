"""Tiny real backends on 127.0.0.1 for data-path tests: line-echo TCP and UDP servers whose answers
name the backend, so a test can tell which one served a request."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from kubelb.util import ports


class TCPEcho:
    """Answers each line `x` with `<name>:x`. Counts open connections."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TCPEcho:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                writer.write(f"{self.name}:".encode() + line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.sendto(f"{self.name}:".encode() + data, addr)


class UDPEcho:
    """Answers each datagram `x` with `<name>:x`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> UDPEcho:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UDPProtocol(self.name), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._transport is not None
        self._transport.close()


async def tcp_roundtrip(port: int, text: str = "ping", limit: float = 2.0) -> str:
    """Open a connection, send one line, return the answer line ('' when none)."""
    async with asyncio.timeout(limit):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(text.encode() + b"\n")
            await writer.drain()
            return (await reader.readline()).decode().strip()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class TCPClient:
    """A long-lived connection for checking that existing connections survive changes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> TCPClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def ask(self, text: str, limit: float = 5.0) -> str:
        async with asyncio.timeout(limit):
            self.writer.write(text.encode() + b"\n")
            await self.writer.drain()
            return (await self.reader.readline()).decode().strip()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class _UDPClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data)


async def udp_roundtrip(port: int, text: str = "ping", limit: float = 1.0) -> str:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _UDPClient, remote_addr=("127.0.0.1", port)
    )
    try:
        transport.sendto(text.encode())
        async with asyncio.timeout(limit):
            return (await proto.answers.get()).decode()
    finally:
        transport.close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP right now on 127.0.0.1 (`kind` is checked first)."""
    other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
    return ports.free_port(kinds=(kind, other))


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, what: str = "condition"
) -> None:
    """Poll `check` until it returns True; fail with `what` after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: BaseException | None = None
    while loop.time() < deadline:
        try:
            if await check():
                return
        except (OSError, TimeoutError, EOFError) as e:
            last = e
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


class TrafficLoop:
    """New TCP connections back to back while a test changes config; records every answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[str] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TrafficLoop:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = await tcp_roundtrip(self.port, "loop")
            except (OSError, TimeoutError) as e:
                self.failures.append(repr(e))
            else:
                (self.answers if answer else self.failures).append(answer or "empty answer")
            await asyncio.sleep(0.01)

    async def wait_for_answer(self, prefix: str, within: float = 30.0) -> None:
        async def seen() -> bool:
            return any(a.startswith(prefix) for a in self.answers)

        await eventually(seen, within=within, what=f"an answer from {prefix!r}")
