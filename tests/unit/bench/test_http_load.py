"""The Python fallback for wrk counts answered requests and errors as wrk does, on keep-alive
connections and with a new connection per request."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bench.dataplane import load


async def _server(status: bytes) -> tuple[asyncio.Server, int, list[int]]:
    """An HTTP/1.1 server answering every request with `status`; counts connections."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 3\r\n\r\nok\n")
                await writer.drain()
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


@pytest.mark.parametrize("close", [False, True])
async def test_counts_answered_requests(close: bool) -> None:
    server, port, connections = await _server(b"200 OK")
    async with server:
        result = await load.http_load(
            f"http://127.0.0.1:{port}/", seconds=0.3, connections=2, close=close
        )
    assert result.errors == 0
    assert result.requests > 2
    assert result.rps > 0
    assert 0 < result.p50_ms <= result.p99_ms
    # A new connection per request with `close`; one per client otherwise.
    assert len(connections) == (result.requests if close else 2)


async def test_non_2xx_answers_are_errors() -> None:
    server, port, _ = await _server(b"503 Service Unavailable")
    async with server:
        result = await load.http_load(
            f"http://127.0.0.1:{port}/", seconds=0.2, connections=1, close=False
        )
    assert result.requests == 0
    assert result.errors > 0


async def test_sends_the_given_headers_and_query() -> None:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await load.http_load(
            f"http://127.0.0.1:{port}/a/b?page=2", seconds=0.1, connections=1, close=False,
            headers=(("Host", "svc.test"), ("x-tenant", "gold")),
        )  # fmt: skip
    assert result.errors == 0
    assert heads
    lines = heads[0].decode().split("\r\n")
    assert lines[0] == "GET /a/b?page=2 HTTP/1.1"
    # The given Host replaces the URL's, once.
    assert [line for line in lines if line.lower().startswith("host:")] == ["Host: svc.test"]
    assert "x-tenant: gold" in lines
