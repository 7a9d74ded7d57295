"""A fast uvloop HTTP/1.1 backend for when nginx is not installed: `python -m
bench.dataplane.backend PORT`. Answers every request (GET without body) with a fixed response."""

from __future__ import annotations

import asyncio
import sys

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
            self.transport.write(RESPONSE * n)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    loops.run(serve(int(sys.argv[1])))
