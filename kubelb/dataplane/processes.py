"""`--workers N`: N worker processes, each a single-process `DataPlane` on its own event loop,
all binding the same listeners with SO_REUSEPORT so the kernel spreads connections over cores.

Input: configs from the parent `DataPlane.apply`. Output: the workers' merged status. Messages are
JSON lines on the workers' stdin/stdout: `{"op": "apply", "config": ...}` (answered by
`{"op": "applied"}`), `{"op": "close", "drain": seconds}`; workers push `{"op": "status", ...}`
every second. A worker that dies is logged, restarted and given the current config. A message
over `_LINE_LIMIT` is dropped with an error, and reading goes on: a worker never blocks on a full
pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from typing import Any

from kubelb.dataplane import context
from kubelb.ir import codec, proxy

logger = logging.getLogger(__name__)

APPLY_TIMEOUT_SECONDS = 60.0
_LINE_LIMIT = 64 * 1024 * 1024


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.status: dict[str, Any] = {}
        self.applied: asyncio.Queue[None] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None


class WorkerPool:
    def __init__(self, count: int, *, options: context.Options, drain_seconds: float) -> None:
        self._workers = [_Worker(i) for i in range(count)]
        self._options = options
        self._drain = drain_seconds
        self._config: proxy.ProxyConfig | None = None
        self._closing = False

    async def start(self) -> None:
        for w in self._workers:
            await self._spawn(w)

    async def _spawn(self, w: _Worker) -> None:
        options = json.dumps(dataclasses.asdict(self._options))
        w.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kubelb.dataplane.worker",
            "--options",
            options,
            "--index",
            str(w.index),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        w.applied = asyncio.Queue()
        w.reader = asyncio.get_running_loop().create_task(self._read(w), name=f"worker-{w.index}")

    async def _read(self, w: _Worker) -> None:
        process = w.process
        assert process is not None
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # over _LINE_LIMIT: dropped, never fatal (the pipe must drain)
                logger.error("data-plane worker %d: dropped a message over %d bytes",
                             w.index, _LINE_LIMIT)  # fmt: skip
                continue
            if not line:
                break
            try:
                message = json.loads(line)
            except ValueError:  # the tail of a dropped message
                continue
            if message["op"] == "status":
                w.status = message["status"]
            elif message["op"] == "applied":
                w.applied.put_nowait(None)
        code = await process.wait()
        if self._closing:
            return
        logger.error("data-plane worker %d exited with code %s; restarting it", w.index, code)
        await asyncio.sleep(1.0)
        await self._spawn(w)
        if self._config is not None:
            await self._send(w, {"op": "apply", "config": codec.to_dict(self._config)})

    async def _send(self, w: _Worker, message: dict[str, Any]) -> None:
        process = w.process
        if process is None or process.stdin is None:
            return
        process.stdin.write(json.dumps(message).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()

    async def apply(self, config: proxy.ProxyConfig) -> None:
        self._config = config
        message = {"op": "apply", "config": codec.to_dict(config)}
        for w in self._workers:
            await self._send(w, message)
        async with asyncio.timeout(APPLY_TIMEOUT_SECONDS):
            for w in self._workers:
                await w.applied.get()

    async def close(self, drain_seconds: float) -> None:
        self._closing = True
        for w in self._workers:
            await self._send(w, {"op": "close", "drain": drain_seconds})
            if w.process is not None and w.process.stdin is not None:
                w.process.stdin.close()
        for w in self._workers:
            if w.process is None:
                continue
            try:
                async with asyncio.timeout(drain_seconds + 10.0):
                    await w.process.wait()
            except TimeoutError:
                logger.warning("data-plane worker %d did not stop; killing it", w.index)
                w.process.kill()
                await w.process.wait()
            if w.reader is not None:
                await w.reader

    def status(self) -> dict[str, Any]:
        statuses = [w.status for w in self._workers if w.status]
        merged: dict[str, Any] = {"listeners": [], "clusters": {}}
        if statuses:
            merged = dict(statuses[0])
        merged["workers"] = len(self._workers)
        merged["connections"] = sum(s.get("connections", 0) for s in statuses)
        merged["refused_connections"] = sum(s.get("refused_connections", 0) for s in statuses)
        by_name: dict[str, dict[str, Any]] = {}
        for s in statuses:
            for li in s.get("listeners", []):
                entry = by_name.setdefault(li["name"], {**li, "connections": 0})
                entry["connections"] += li.get("connections", 0)
                entry["bound"] = entry["bound"] and li.get("bound", False)
        merged["listeners"] = list(by_name.values())
        merged["per_worker"] = statuses
        return merged
