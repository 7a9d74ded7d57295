"""The Python data plane as a process of its own, apart from kubelb:
`python -m kubelb.dataplane.daemon --control-fd N --workers N --options JSON`.

Input: configurations over the control socket (`control`), inherited already listening as fd N,
from any controller that connects (kubelb, and after a crash of kubelb the next one). Output: a
`runtime.DataPlane` serving the last configuration applied, whether or not a controller is
connected, and its status pushed to every controller each second. kubelb starts it in its own
session without PR_SET_PDEATHSIG, so a `kill -9` of kubelb leaves it serving; only SIGTERM or a
`stop` request ends it, after draining as `DataPlane.close` does. Logs go to stderr (a FIFO that
kubelb reads; while no kubelb reads, lines are lost rather than blocking the proxy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import signal
import socket
import sys
from typing import Any

from kubelb.dataplane import context, control, loops, runtime
from kubelb.ir import codec
from kubelb.util import logsafe

logger = logging.getLogger("kubelb.dataplane.daemon")  # not __main__: it runs with -m

STATUS_EVERY_SECONDS = 1.0
# Status pushes wait while a controller has this much unread (one that stopped reading).
_BACKLOG_BYTES = 4 * 1024 * 1024
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
# SIGTERM from outside kubelb (which sends `stop` with its own --drain-seconds): its default.
SIGTERM_DRAIN_SECONDS = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubelb-dataplane")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--options", default="{}")
    args = parser.parse_args(argv)
    # Ctrl-C in kubelb's terminal is not ours (we run in our own session anyway).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    logsafe.install(LOG_FORMAT)  # listener names come from tenants: one record, one line
    # No reader on the log FIFO (kubelb is gone): a failed write is dropped without a report.
    logging.raiseExceptions = False
    _raise_file_limit()
    options = context.Options(**json.loads(args.options))
    sock = socket.socket(fileno=args.control_fd)
    loops.run(Daemon(sock, runtime.DataPlane(workers=args.workers, options=options)).serve())
    return 0


class Daemon:
    def __init__(self, sock: socket.socket, dp: runtime.DataPlane) -> None:
        self.sock = sock
        self.dp = dp
        self.controllers: set[asyncio.StreamWriter] = set()
        self.stop = asyncio.Event()
        self.drain = 0.0

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop, SIGTERM_DRAIN_SECONDS)
        server = await asyncio.start_unix_server(self._controller, sock=self.sock,
                                                 limit=control.LINE_LIMIT)  # fmt: skip
        reporter = loop.create_task(self._report(), name="status")
        logger.info("Python data plane serving (%d workers)", self.dp.workers)
        try:
            await self.stop.wait()
        finally:
            server.close()
            # Keep reporting while draining: kubelb's status shows the listeners draining.
            try:
                await self.dp.close(self.drain)
            finally:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
                for writer in list(self.controllers):
                    writer.close()
        logger.info("Python data plane stopped")

    def _stop(self, drain: float) -> None:
        if not self.stop.is_set():
            self.drain = drain
            self.stop.set()

    async def _controller(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.controllers.add(writer)
        logger.info("a controller connected")
        try:
            async for message in control.read_messages(reader):
                await self._handle(message, writer)
        finally:
            self.controllers.discard(writer)
            writer.close()
            if not self.stop.is_set():
                logger.info("a controller disconnected; serving on")

    async def _handle(self, message: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        op = message.get("op")
        if op == "apply":
            try:
                config = await asyncio.to_thread(codec.proxy_config_from_dict, message["config"])
                await self.dp.apply(config)
            except Exception:  # the last good configuration keeps serving
                logger.exception("cannot apply the configuration, keeping the previous one")
            await self._send(writer, {"op": "applied", "status": self.dp.status()})
        elif op == "stop":
            await self._send(writer, {"op": "stopping"})
            self._stop(float(message.get("drain", 0.0)))
        else:
            logger.error("control channel: unknown request %r", op)
            await self._send(writer, {"op": "error", "error": f"unknown request {op!r}"})

    async def _send(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        data = await control.encode(message)
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(data)
            await writer.drain()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_SECONDS)
            if not self.controllers:
                continue
            data = await control.encode({"op": "status", "status": self.dp.status()})
            for writer in list(self.controllers):
                if writer.transport.get_write_buffer_size() < _BACKLOG_BYTES:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        writer.write(data)


def _raise_file_limit() -> None:
    """A socket per listener (per worker): the usual soft limit (1024) is far too low."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    raise SystemExit(main())
