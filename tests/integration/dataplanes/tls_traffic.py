"""TLS clients and backends for the HTTPS and passthrough tests: Python `ssl` clients that check
the chain against the test CA and the host name against the SNI they send, and record which
certificate (serial number) the server presented; TLS backends that greet with their name."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography import x509

from tests.integration.dataplane import scenarios
from tests.support import tlscerts

Address = scenarios.Address

# What a refused handshake looks like to a client: an alert, a reset or a close.
REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)


def client_context(ca: tlscerts.CA, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.cert_pem)
    context.set_alpn_protocols(list(alpn))
    return context


def serial_of(writer: asyncio.StreamWriter) -> int:
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return int(x509.load_der_x509_certificate(der).serial_number)


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    serial: int
    alpn: str | None

    @classmethod
    async def open(
        cls, addr: Address, server_name: str | None, context: ssl.SSLContext
    ) -> Connection:
        """A verified TLS connection sending SNI `server_name` (None: no SNI, and no host name
        check: the chain is still verified)."""
        if server_name is None:
            context.check_hostname = False
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(
                *addr, ssl=context, server_hostname=server_name or ""
            )
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        return cls(reader, writer, serial_of(writer), alpn)

    async def get(self, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(10):
            return await scenarios.http_request(
                ("", 0), scenarios.get(path, host), reader_writer=(self.reader, self.writer)
            )

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


async def https_get(
    addr: Address, host: str, context: ssl.SSLContext, path: str = "/"
) -> tuple[int, dict[str, str], int]:
    """(status, headers, served certificate serial) of one request on a new connection."""
    conn = await Connection.open(addr, host, context)
    try:
        status, headers, _ = await conn.get(path, host)
    finally:
        await conn.close()
    return status, headers, conn.serial


async def refused(addr: Address, server_name: str | None, context: ssl.SSLContext) -> bool:
    """The handshake with SNI `server_name` fails (and nothing is served)."""
    try:
        conn = await Connection.open(addr, server_name, context)
    except REFUSED:
        return True
    await conn.close()
    return False


@dataclass
class TLSBackend:
    """A TLS server presenting `issued`, greeting each connection with `name\\n` and echoing."""

    name: str
    issued: tlscerts.Issued
    port: int = 0
    handshakes: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> TLSBackend:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tlscerts_files(self.issued) as (chain, key):
            context.load_cert_chain(chain, key)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        self._writers.add(writer)
        try:
            writer.write(f"{self.name}\n".encode())
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None


@contextlib.contextmanager
def tlscerts_files(issued: tlscerts.Issued) -> Iterator[tuple[str, str]]:
    """The backend's chain and key as anonymous memory files (paths for `load_cert_chain`)."""
    fds: list[int] = []
    try:
        paths = []
        for text in (issued.cert_pem, issued.key_pem):
            fd = os.memfd_create("test-tls")
            fds.append(fd)
            os.write(fd, text.encode())
            paths.append(f"/proc/self/fd/{fd}")
        yield paths[0], paths[1]
    finally:
        for fd in fds:
            os.close(fd)


async def passthrough_greeting(
    addr: Address, server_name: str, context: ssl.SSLContext
) -> tuple[str, int]:
    """(greeting, certificate serial) of a TLS connection through a passthrough listener: the
    handshake is the backend's own."""
    conn = await Connection.open(addr, server_name, context)
    try:
        async with asyncio.timeout(10):
            greeting = (await conn.reader.readline()).decode().strip()
            conn.writer.write(b"ping\n")
            echo = (await conn.reader.readline()).decode().strip()
        assert echo == "ping", echo
    finally:
        await conn.close()
    return greeting, conn.serial
