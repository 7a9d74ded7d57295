"""A Python `ssl` client for tests: HTTPS requests over keep-alive connections with a chosen SNI,
recording which certificate (serial number) the server presented."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cryptography import x509


def client_context(ca_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca_pem)
    context.set_alpn_protocols(["http/1.1"])
    return context


class HTTPSConnection:
    """One TLS connection (SNI `server_name`) carrying HTTP/1.1 keep-alive requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        self.serial = x509.load_der_x509_certificate(der).serial_number

    @classmethod
    async def open(
        cls,
        port: int,
        server_name: str,
        context: ssl.SSLContext,
        limit: float = 5.0,
        *,
        address: str = "127.0.0.1",
    ) -> HTTPSConnection:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(
                address, port, ssl=context, server_hostname=server_name
            )
        return cls(reader, writer)

    async def get(self, path: str, host: str, limit: float = 5.0) -> tuple[int, str]:
        """(status, body) of one request on this connection."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        async with asyncio.timeout(limit):
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next(
                int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                if k.strip().lower() == "content-length"
            )  # fmt: skip
            body = await self.reader.readexactly(length)
        return status, body.decode()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


async def served_serial(
    port: int, server_name: str, context: ssl.SSLContext, *, address: str = "127.0.0.1"
) -> int:
    """The serial number of the certificate a new connection with SNI `server_name` gets."""
    conn = await HTTPSConnection.open(port, server_name, context, address=address)
    await conn.close()
    return conn.serial


@contextlib.asynccontextmanager
async def tls_echo(
    issued: Any, tag: str, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[int]:
    """A TLS line-echo server presenting `issued` (a `tlscerts.Issued`): answers each line `x`
    with `<tag>:x`. Yields its port. The backend terminates TLS itself (passthrough tests)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as scratch:
        cert, key = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
        cert.write_text(issued.cert_pem)
        key.write_text(issued.key_pem)
        context.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while line := await reader.readline():
                writer.write(f"{tag}:".encode() + line)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, host, port, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
