"""A steady HTTP client load for live-change tests: a few keep-alive clients sending GETs in a
loop, recording which backend answered (`x-backend`) and every failed request.

Each client behaves as ordinary HTTP clients do: it reconnects after `connection: close`, and
retries a request once on a fresh connection when a kept-alive connection is closed before any
byte of the answer arrived (the server may close an idle connection at any time, RFC 9112 9.3.1).
Anything else (an error status, a reset mid-answer, a failure on a fresh connection) is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tests.integration.dataplane import scenarios

logger = logging.getLogger(__name__)


class Loop:
    def __init__(self, addr: scenarios.Address, *, clients: int = 4, path: str = "/") -> None:
        self.addr = addr
        self.path = path
        self.failures: list[str] = []
        # (client index, backend) per answer, in order.
        self.log: list[tuple[int, str]] = []
        self._clients = clients
        self._stop = False
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Loop:
        self._tasks = [
            asyncio.create_task(self._client(i), name=f"traffic-{i}") for i in range(self._clients)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks)

    def answers(self) -> int:
        return len(self.log)

    async def more_answers(self, mark: int, count: int) -> bool:
        return len(self.log) - mark >= count

    def seen_since(self, mark: int) -> set[str]:
        return {backend for _, backend in self.log[mark:]}

    async def all_answered_by(self, backend: str) -> bool:
        """Every client's latest answer came from `backend`."""
        last = dict(self.log)
        return len(last) == self._clients and set(last.values()) == {backend}

    async def _client(self, index: int) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        fresh = False
        request = scenarios.get(self.path)
        try:
            while not self._stop:
                if conn is None:
                    conn = await asyncio.open_connection(*self.addr)
                    fresh = True
                try:
                    status, headers, _ = await scenarios.http_request(
                        self.addr, request, reader_writer=conn
                    )
                except (ConnectionError, asyncio.IncompleteReadError) as err:
                    await _close(conn)
                    conn = None
                    partial = isinstance(err, asyncio.IncompleteReadError) and err.partial
                    if fresh or partial:
                        self.failures.append(f"client {index}: {err!r}")
                    continue
                fresh = False
                if status != 200:
                    self.failures.append(f"client {index}: status {status}")
                self.log.append((index, headers.get("x-backend", "")))
                if headers.get("connection", "").lower() == "close":
                    await _close(conn)
                    conn = None
                await asyncio.sleep(0.005)
        finally:
            if conn is not None:
                await _close(conn)


async def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    conn[1].close()
    with contextlib.suppress(ConnectionError):
        await conn[1].wait_closed()
