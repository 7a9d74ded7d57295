"""The channel between kubelb and its detached Python data plane (`kubelb.dataplane.daemon`).

Messages are JSON lines on a Unix socket, `control.sock` in the data plane's state folder:
kubelb sends `{"op": "apply", "config": ...}` (answered by `{"op": "applied", "status": ...}`)
and `{"op": "stop", "drain": seconds}` (answered by `{"op": "stopping"}`); the data plane pushes
`{"op": "status", "status": ...}` every second to every connected controller. Answers come in
the order of the requests on one connection. A controller that goes away (kubelb killed) is only
a closed connection: the data plane keeps serving, and the next kubelb connects again.

`Record` is what the starting kubelb writes to `dataplane.json` (pid, start time, socket, the
spec it was started with), so that a later kubelb adopts that data plane rather than starting
another one; `reap` kills recorded data planes (tests).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

RECORD = "dataplane.json"
SOCKET = "control.sock"
# One message may carry 10,000 listeners (megabytes of JSON).
LINE_LIMIT = 64 * 1024 * 1024
# Messages longer than this are decoded and encoded off the event loop.
OFF_LOOP_BYTES = 64 * 1024
_UNIX_PATH_MAX = 108  # sun_path, with its terminating NUL


class ControlClosed(ConnectionError):
    """The data plane's end of the control connection went away."""


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    pid: int
    start_time: int
    socket: str
    spec: dict[str, Any]

    def write(self, folder: Path) -> None:
        """Replace `folder/RECORD` atomically: a crash never leaves half a record."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(dataclasses.asdict(self)) + "\n")
        os.replace(tmp, folder / RECORD)

    @classmethod
    def read(cls, folder: Path) -> Record | None:
        try:
            data = json.loads((folder / RECORD).read_text())
            return cls(pid=int(data["pid"]), start_time=int(data["start_time"]),
                       socket=str(data["socket"]), spec=dict(data["spec"]))  # fmt: skip
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def running(self) -> bool:
        """The recorded process still runs (the same one: pid and start time)."""
        return start_time(self.pid) == self.start_time


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot): with the pid, it names one process
    even after the pid is reused. None when it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def socket_path(folder: Path) -> Path:
    """`folder/SOCKET`, or one in a private temporary folder when that path is longer than a
    Unix socket allows."""
    path = folder / SOCKET
    if len(os.fsencode(path)) >= _UNIX_PATH_MAX:
        path = Path(tempfile.mkdtemp(prefix="kubelb-dataplane-")) / SOCKET
    return path


def reap(state_dir: Path) -> list[int]:
    """Kill every data plane recorded under `state_dir` that still runs, with its workers (for
    tests, whose clean-up must reach data planes that outlived their kubelb); their pids."""
    killed = []
    for path in Path(state_dir).rglob(RECORD):
        record = Record.read(path.parent)
        if record is not None and record.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)  # it leads its own process group
                killed.append(record.pid)
        path.unlink(missing_ok=True)
    return killed


async def encode(message: dict[str, Any]) -> bytes:
    if message.get("op") in ("apply", "applied", "status"):  # the big ones
        return (await asyncio.to_thread(json.dumps, message)).encode() + b"\n"
    return json.dumps(message).encode() + b"\n"


async def decode(line: bytes) -> dict[str, Any]:
    if len(line) > OFF_LOOP_BYTES:
        message: dict[str, Any] = await asyncio.to_thread(json.loads, line)
    else:
        message = json.loads(line)
    return message


async def read_messages(reader: asyncio.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """Every message on `reader` until end of file; a line over `LINE_LIMIT` is dropped with an
    error, and reading goes on."""
    while True:
        try:
            line = await reader.readline()
        except ValueError:
            logger.error("control channel: dropped a message over %d bytes", LINE_LIMIT)
            continue
        except ConnectionError:
            return
        if not line:
            return
        try:
            yield await decode(line)
        except ValueError:  # the tail of a dropped message
            continue


class Client:
    """kubelb's end of one control connection: requests answered in order, and the last status
    the data plane pushed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._pending: collections.deque[asyncio.Future[dict[str, Any]]] = collections.deque()
        self._lock = asyncio.Lock()
        self.status: dict[str, Any] = {}
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, path: str) -> Client:
        reader, writer = await asyncio.open_unix_connection(path, limit=LINE_LIMIT)
        return cls(reader, writer)

    async def run(self) -> None:
        """Read until the data plane closes the connection (it exited)."""
        try:
            async for message in read_messages(self._reader):
                if message.get("op") == "status":
                    self.status = message["status"]
                elif self._pending:
                    if message.get("op") == "applied":
                        self.status = message["status"]
                    future = self._pending.popleft()
                    if not future.done():
                        future.set_result(message)
        finally:
            self.closed.set()
            while self._pending:
                future = self._pending.popleft()
                if not future.done():
                    future.set_exception(ControlClosed("the data plane closed its control socket"))
            self.close()

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send `message` and wait for its answer; ControlClosed when the data plane goes away."""
        data = await encode(message)
        async with self._lock:  # the answers' order is the requests' order
            if self.closed.is_set():
                raise ControlClosed("the data plane closed its control socket")
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending.append(future)
            try:
                self._writer.write(data)
                await self._writer.drain()
            except ConnectionError as e:
                raise ControlClosed(str(e)) from e
        return await future

    def close(self) -> None:
        self._writer.close()
