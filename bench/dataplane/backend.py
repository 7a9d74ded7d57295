"""A fast uvloop HTTP/1.1 backend for when nginx is not installed: `python -m
bench.dataplane.backend PORT [NAME:PORT ...]`. Answers every request (GET without body) on PORT
with a fixed response, and on each NAME:PORT with `l7.echo_body` (as nginx's echo servers do)."""

from __future__ import annotations

import asyncio
import functools
import sys

from bench.dataplane import l7
from kubelb.dataplane import loops

RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 17\r\n\r\nhello from nginx\n"
)


class Answer(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        n = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4 :] if n else data
        if n and self.transport is not None:
            self.transport.write(self.answer(data, n))

    def answer(self, data: bytes, n: int) -> bytes:
        """The answers to the `n` complete request heads at the start of `data`."""
        return RESPONSE * n


class Echo(Answer):
    """Answers each request with who it is, its target and the headers the L7 route edits."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def answer(self, data: bytes, n: int) -> bytes:
        return b"".join(echo(self.name, head) for head in data.split(b"\r\n\r\n")[:n])


def echo(name: str, head: bytes) -> bytes:
    """The echo answer to one request head (without its blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    target = lines[0].split(" ")[1]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        field, _, value = line.partition(":")
        headers.setdefault(field.strip().lower(), value.strip())
    body = l7.echo_body(name, target, lambda h: headers.get(h, "")).encode()
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
        + f"{l7.BACKEND_ONLY_HEADER}: {name}\r\n".encode()
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def serve(port: int, echo_ports: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Answer, "127.0.0.1", port, backlog=4096)]
    for name, echo_port in echo_ports.items():
        echoes = functools.partial(Echo, name)
        servers.append(await loop.create_server(echoes, "127.0.0.1", echo_port, backlog=4096))
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    echoes = dict(arg.split(":", 1) for arg in sys.argv[2:])
    loops.run(serve(int(sys.argv[1]), {name: int(p) for name, p in echoes.items()}))
