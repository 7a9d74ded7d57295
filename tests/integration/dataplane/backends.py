"""Tiny real backends on 127.0.0.1 for data-plane tests: TCP echo (optionally parsing PROXY v2),
UDP echo, and an HTTP/1.1 server with keep-alive, chunked bodies, WebSocket-style upgrades and
misbehaving endpoints. Each backend names itself in its answers so tests can see who served.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import struct
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field

from kubelb.util import ports

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    return ports.free_port(host, kinds=(kind,))


@dataclass
class ProxyHeader:
    command: str
    source: tuple[str, int] | None
    destination: tuple[str, int] | None


async def read_proxy_v2(reader: asyncio.StreamReader) -> ProxyHeader:
    """Parse a PROXY v2 header (written independently of kubelb's encoder, from the spec)."""
    head = await reader.readexactly(16)
    if head[:12] != PROXY_V2_SIGNATURE:
        raise ValueError(f"not a PROXY v2 header: {head!r}")
    ver_cmd, fam, length = head[12], head[13], struct.unpack("!H", head[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ValueError("bad version")
    body = await reader.readexactly(length)
    if ver_cmd & 0x0F == 0:
        return ProxyHeader("LOCAL", None, None)
    if fam >> 4 == 1:
        src, dst = body[0:4], body[4:8]
        sport, dport = struct.unpack("!HH", body[8:12])
    elif fam >> 4 == 2:
        src, dst = body[0:16], body[16:32]
        sport, dport = struct.unpack("!HH", body[32:36])
    else:
        raise ValueError(f"unsupported family {fam:#x}")
    return ProxyHeader(
        "PROXY",
        (str(ipaddress.ip_address(src)), sport),
        (str(ipaddress.ip_address(dst)), dport),
    )


class _Handlers:
    """Open connections of a stream server and their handler tasks, so stop() leaves nothing."""

    def __init__(self) -> None:
        self.writers: dict[asyncio.StreamWriter, asyncio.Task[object]] = {}

    @contextlib.contextmanager
    def track(self, writer: asyncio.StreamWriter) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self.writers[writer] = task
        try:
            yield
        finally:
            self.writers.pop(writer, None)

    async def close(self) -> None:
        tasks = list(self.writers.values())
        for w in list(self.writers):
            w.transport.abort()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class TCPBackend:
    """Greets each connection with `name\\n`, then echoes; on EOF answers `bye\\n` and closes."""

    name: str
    parse_proxy: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    proxy_headers: list[ProxyHeader] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _handlers: _Handlers = field(default_factory=lambda: _Handlers())

    async def start(self) -> TCPBackend:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with self._handlers.track(writer):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.parse_proxy:
                self.proxy_headers.append(await read_proxy_v2(reader))
            writer.write(f"{self.name}\n".encode())
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write(b"bye\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._handlers.close()
            await self._server.wait_closed()
            self._server = None

    def echo_blocked(self) -> bool:
        """An echo waits to be sent: its write buffer is above the high mark, because the peer
        (the proxy) stopped reading."""
        for writer in self._handlers.writers:
            _, high = writer.transport.get_write_buffer_limits()
            if writer.transport.get_write_buffer_size() > high:
                return True
        return False


class _UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, backend: UDPBackend) -> None:
        self.backend = backend
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.backend.peers.add(addr)
        assert self.transport is not None
        self.transport.sendto(self.backend.name.encode() + b":" + data, addr)


@dataclass
class UDPBackend:
    """Answers each datagram with `name:` + the datagram; remembers client addresses."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    peers: set[tuple[str, int]] = field(default_factory=set)
    _transport: asyncio.DatagramTransport | None = None

    async def start(self) -> UDPBackend:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UDPEcho(self), local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


@dataclass
class HTTPRequest:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> HTTPRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    body = b""
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    return HTTPRequest(method, target, version, headers, body)


@dataclass
class HTTPBackend:
    """HTTP/1.1 keep-alive server. Paths:
    `/...` 200 `name path`, with `x-backend`, `x-seen-xff`, `x-seen-connection` headers;
    `/echo` echoes the body back chunked; `/chunks/N` streams N chunks;
    `.../slow/S` answers after S seconds; `/reset` resets the connection; `/close` answers with
    `connection: close`; `/bigheader/N` answers with an N-byte header, `/manyheaders/N` with N
    more headers; any request with
    `upgrade: websocket` gets 101 and an echo tunnel prefixed by `name|`."""

    name: str
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    requests: list[HTTPRequest] = field(default_factory=list)
    # Serve HTTPS with this context (an HTTPS backend) instead of plain HTTP.
    tls: ssl.SSLContext | None = None
    _server: asyncio.Server | None = None
    _handlers: _Handlers = field(default_factory=lambda: _Handlers())

    async def start(self) -> HTTPBackend:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._handlers.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with self._handlers.track(writer):
            try:
                while (req := await read_request(reader)) is not None:
                    self.requests.append(req)
                    if not await self._answer(req, reader, writer):
                        break
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

    async def _answer(
        self, req: HTTPRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        path = req.target
        if req.headers.get("upgrade", "").lower() == "websocket":
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                b"connection: upgrade\r\n\r\n"
            )
            while data := await reader.read(65536):
                writer.write(self.name.encode() + b"|" + data)
                await writer.drain()
            return False
        if path == "/reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if "/slow/" in path:
            await asyncio.sleep(float(path.rsplit("/slow/", 1)[1].partition("?")[0]))
        if path == "/echo":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for i in range(0, len(req.body), 4096):
                part = req.body[i : i + 4096]
                writer.write(b"%x\r\n%b\r\n" % (len(part), part))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        if path.startswith("/chunks/"):
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for i in range(int(path.rsplit("/", 1)[1])):
                part = f"chunk-{i};".encode()
                writer.write(b"%x\r\n%b\r\n" % (len(part), part))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            return True
        extra = ""
        if path.startswith("/bigheader/"):
            extra = "x-big: " + "b" * int(path.rsplit("/", 1)[1]) + "\r\n"
        if path.startswith("/manyheaders/"):
            extra = "".join(f"x-many-{i}: v\r\n" for i in range(int(path.rsplit("/", 1)[1])))
        close = path == "/close" or req.headers.get("connection", "").lower() == "close"
        body = f"{self.name} {path}".encode()
        head = (
            f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\nx-backend: {self.name}\r\n"
            f"x-seen-xff: {req.headers.get('x-forwarded-for', '')}\r\n"
            f"x-seen-connection: {req.headers.get('connection', '')}\r\n{extra}"
            + ("connection: close\r\n" if close else "")
            + "\r\n"
        )
        writer.write(head.encode() + (b"" if req.method == "HEAD" else body))
        await writer.drain()
        return not close


@contextlib.contextmanager
def full_backlog_port() -> Iterator[int]:
    """A port whose listener has a full accept queue: new connects hang until they time out."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(hole.getsockname())
            fillers.append(s)
        yield int(hole.getsockname()[1])
    finally:
        for s in fillers:
            s.close()
        hole.close()
