"""Envoy's output streams, read so that Envoy never blocks on a full pipe.

`Fifo` is a named pipe in the node's folder (a supervisor started after a crash reopens the one
an adopted Envoy writes to); `pump` hands each line to a sink, cutting a line longer than
`MAX_LOG_LINE` with a marker (`TRUNCATED`), and never stops before end of file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

MAX_LOG_LINE = 16 * 1024
TRUNCATED = " [... %d bytes cut]"
READ_CHUNK = 64 * 1024


class Fifo:
    """A named pipe carrying one of Envoy's output streams. We hold the read end; Envoy gets
    the write end, so Envoy's exit is our end of file, and a supervisor started after a crash
    reopens the same FIFO of an adopted Envoy. With no reader Envoy's writes fail (EPIPE,
    which Envoy ignores) rather than block."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_fifo():
            path.unlink(missing_ok=True)
            os.mkfifo(path, 0o600)
        self.path = path
        # Non-blocking: there may be no writer yet.
        self._reader: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._writer: int | None = None
        self._transport: asyncio.ReadTransport | None = None

    def open_writer(self) -> int:
        self._writer = os.open(self.path, os.O_WRONLY)
        return self._writer

    def close_writer(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None

    async def pump(self, sink: Callable[[str], None]) -> None:
        assert self._reader is not None
        reader = asyncio.StreamReader(limit=READ_CHUNK)
        loop = asyncio.get_running_loop()
        fd, self._reader = self._reader, None
        self._transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        await pump(reader, sink)

    def close(self) -> None:
        self.close_writer()
        if self._transport is not None:
            self._transport.close()
        if self._reader is not None:
            os.close(self._reader)
            self._reader = None


async def pump(stream: asyncio.StreamReader, sink: Callable[[str], None]) -> None:
    """Hand every line of `stream` to `sink` until end of file. A line longer than
    `MAX_LOG_LINE` is cut there with a marker: it can never stop the reading."""
    pending = b""
    cut = 0  # bytes dropped from the current line so far
    while chunk := await stream.read(READ_CHUNK):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            _emit(line, cut, sink)
            cut = 0
        if len(pending) > MAX_LOG_LINE:
            cut += len(pending) - MAX_LOG_LINE
            pending = pending[:MAX_LOG_LINE]
    if pending:
        _emit(pending, cut, sink)


def _emit(line: bytes, cut: int, sink: Callable[[str], None]) -> None:
    if len(line) > MAX_LOG_LINE:
        cut += len(line) - MAX_LOG_LINE
        line = line[:MAX_LOG_LINE]
    text = line.decode(errors="replace").rstrip()
    if cut:
        text += TRUNCATED % cut
    if text:
        sink(text)
