"""Traffic scenarios against any data plane: each takes the listener address and the backends
behind it, and asserts what a client and the backends observe. Nothing here knows which proxy
serves the address, so the same functions can run against Envoy through standalone mode.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Sequence

from tests.integration.dataplane import backends

Address = tuple[str, int]


async def tcp_greeting(addr: Address, *, local_ip: str | None = None) -> str:
    """Connect (optionally from `local_ip`), read which backend answered, and hang up."""
    local = (local_ip, 0) if local_ip else None
    reader, writer = await asyncio.open_connection(*addr, local_addr=local)
    try:
        return (await reader.readline()).decode().strip()
    finally:
        writer.close()
        await writer.wait_closed()


async def tcp_round_robin(addr: Address, servers: Sequence[backends.TCPBackend]) -> None:
    seen = collections.Counter([await tcp_greeting(addr) for _ in range(3 * len(servers))])
    assert set(seen) == {s.name for s in servers}, seen
    assert max(seen.values()) - min(seen.values()) <= 1, f"not round-robin: {seen}"


async def tcp_echo_half_close(addr: Address, payload_size: int = 4 << 20) -> None:
    """Send a large payload at once (before the upstream can be connected), half-close, and get
    all of it back followed by the backend's goodbye (it saw our EOF through the proxy)."""
    reader, writer = await asyncio.open_connection(*addr)
    payload = bytes(range(256)) * (payload_size // 256)
    writer.write(payload)
    writer.write_eof()
    name = await reader.readline()
    assert name.strip()
    echoed = await reader.readexactly(len(payload))
    assert echoed == payload
    assert await reader.read() == b"bye\n"
    writer.close()
    await writer.wait_closed()


async def tcp_persistence(addr: Address, servers: Sequence[backends.TCPBackend]) -> dict[str, str]:
    """Each source IP always lands on the same backend; several IPs spread over backends."""
    chosen: dict[str, str] = {}
    for i in range(2, 22):
        ip = f"127.0.0.{i}"
        names = {await tcp_greeting(addr, local_ip=ip) for _ in range(3)}
        assert len(names) == 1, f"{ip} moved between backends: {names}"
        chosen[ip] = names.pop()
    assert len(set(chosen.values())) > 1, f"all clients on one backend: {chosen}"
    return chosen


async def tcp_proxy_protocol(addr: Address, server: backends.TCPBackend) -> None:
    before = len(server.proxy_headers)
    assert await tcp_greeting(addr, local_ip="127.0.0.7") == server.name
    header = server.proxy_headers[before]
    assert header.command == "PROXY"
    assert header.source is not None
    assert header.source[0] == "127.0.0.7"
    assert header.destination == addr


async def tcp_closed_without_data(addr: Address) -> None:
    """The proxy accepts, cannot reach any upstream, and closes the client connection."""
    reader, writer = await asyncio.open_connection(*addr)
    with contextlib.suppress(ConnectionResetError):
        assert await reader.read() == b""
    writer.close()


async def udp_exchange(addr: Address, message: bytes, *, sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    for _ in range(50):
        sock.sendto(message, addr)  # uvloop has no sock_sendto; a datagram send never blocks here
        try:
            async with asyncio.timeout(0.2):
                return await loop.sock_recv(sock, 65535)
        except TimeoutError:
            continue
    raise AssertionError(f"no UDP answer from {addr}")


def udp_client() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


async def udp_sessions(addr: Address, servers: Sequence[backends.UDPBackend]) -> None:
    """Each client keeps one backend for its session; several clients spread over backends."""
    names = set()
    clients = [udp_client() for _ in range(2 * len(servers))]
    try:
        for c in clients:
            first = await udp_exchange(addr, b"one", sock=c)
            name = first.split(b":", 1)[0]
            assert first == name + b":one"
            assert await udp_exchange(addr, b"two", sock=c) == name + b":two"
            names.add(name.decode())
    finally:
        for c in clients:
            c.close()
    assert names == {s.name for s in servers}, names


async def http_request(
    addr: Address, raw: bytes, *, reader_writer: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    | None = None,
) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """Send one raw request and read one response (content-length, chunked or until close)."""
    if reader_writer is None:
        reader, writer = await asyncio.open_connection(*addr)
    else:
        reader, writer = reader_writer
    writer.write(raw)
    await writer.drain()
    status, headers, body = await read_response(reader, head=raw.startswith(b"HEAD"))
    if reader_writer is None:
        writer.close()
    return status, headers, body


async def read_response(
    reader: asyncio.StreamReader, *, head: bool = False
) -> tuple[int, dict[str, str], bytes]:
    head_bytes = await reader.readuntil(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if head or status in (101, 204, 304):
        return status, headers, body
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return status, headers, body


def get(path: str, host: str = "example.test", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: {host}\r\n{extra}\r\n".encode()


async def http_keepalive_pooling(addr: Address, server: backends.HTTPBackend) -> None:
    """Many requests on one client connection reuse one upstream connection."""
    before = server.connections
    rw = await asyncio.open_connection(*addr)
    try:
        for i in range(20):
            status, _headers, body = await http_request(addr, get(f"/k{i}"), reader_writer=rw)
            assert status == 200
            assert body == f"{server.name} /k{i}".encode()
    finally:
        rw[1].close()
    assert server.connections - before == 1


async def http_keepalive_pooling_reuse(addr: Address, server: backends.HTTPBackend) -> None:
    """A new client connection after an earlier one finished gets the pooled upstream."""
    before = server.connections
    status, _, _ = await http_request(addr, get("/again"))
    assert status == 200
    assert server.connections == before


async def http_chunked_roundtrip(addr: Address, size: int = 1 << 20) -> None:
    """A chunked request body streamed through and echoed back chunked."""
    payload = bytes(i % 251 for i in range(size))
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
    for i in range(0, size, 65536):
        part = payload[i : i + 65536]
        writer.write(b"%x\r\n%b\r\n" % (len(part), part))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    status, _, body = await read_response(reader)
    writer.close()
    assert status == 200
    assert body == payload


async def http_websocket(addr: Address, server: backends.HTTPBackend) -> None:
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(
        b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
        b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    status, headers, _ = await read_response(reader)
    assert status == 101
    assert headers["upgrade"].lower() == "websocket"
    for msg in (b"ping", b"second frame"):
        writer.write(msg)
        expected = server.name.encode() + b"|" + msg
        assert await reader.readexactly(len(expected)) == expected
    writer.close()


async def http_xff(addr: Address) -> None:
    _, headers, _ = await http_request(addr, get("/xff"))
    assert headers["x-seen-xff"] == "127.0.0.1"
    _, headers, _ = await http_request(addr, get("/xff", extra="x-forwarded-for: 192.0.2.1\r\n"))
    assert headers["x-seen-xff"] == "192.0.2.1, 127.0.0.1"


async def http_limits(addr: Address) -> None:
    """Oversized headers are refused with 431 and the connection closes."""
    big = "x-big: " + "a" * 70_000 + "\r\n"
    status, _, _ = await http_request(addr, get("/", extra=big))
    assert status == 431
    many = "".join(f"x-h{i}: v\r\n" for i in range(200))
    status, _, _ = await http_request(addr, get("/", extra=many))
    assert status == 431
