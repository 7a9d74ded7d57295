"""Standalone data plane driver for the built-in Python proxy (`--dataplane python`).

The proxy runs as a process of its own (`kubelb.dataplane.daemon`, in its own session), so a
crash, a `kill -9` or an upgrade of kubelb leaves it serving its last configuration. Its pid,
start time, control socket and spec (workers, options, interpreter, version) are recorded in
`<work dir>/dataplane.json`; a restarted kubelb adopts a live one with the same spec instead of
starting another, so no listener is bound again, and the proxy keeps serving what it has until
the first configuration of the new kubelb arrives (`HostPublisher` sends only a complete one).
A recorded proxy with another spec is killed and replaced.

Configurations go over the control socket (`kubelb.dataplane.control`); the proxy's log lines
come through the FIFO `stderr.fifo` in the same folder (reopened by a restarted kubelb) and are
logged here under their own logger names. A proxy that exits while kubelb runs is restarted with
backoff and given the current configuration. `close()` drains and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubelb
from kubelb.dataplane import context, control
from kubelb.envoy import logpipe, procs
from kubelb.ir import codec, proxy
from kubelb.manager import loadbalancers
from kubelb.util import backoff

logger = logging.getLogger(__name__)

RESTART_BACKOFF = backoff.Backoff(initial=0.5, cap=10.0)
APPLY_TIMEOUT_SECONDS = 60.0
# Beyond the drain, how long a stopping proxy may take before it is killed.
STOP_GRACE_SECONDS = 10.0
_LEVELS = {name: getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR",
                                                      "CRITICAL")}  # fmt: skip
# The daemon's log format, or its workers' (which put a time and the worker first).
_LOG_LINE = re.compile(r"(?:^|\s)(DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.-]+): (.*)$")


class PythonDriver:
    def __init__(
        self,
        *,
        work_dir: Path,
        workers: int = 1,
        drain_seconds: float = 5.0,
        options: context.Options | None = None,
        restart_backoff: backoff.Backoff = RESTART_BACKOFF,
    ) -> None:
        self.dir = Path(work_dir)
        self.workers = workers
        self.options = options or context.Options()
        self.drain_seconds = drain_seconds
        self.restart_backoff = restart_backoff
        # What a running proxy must have been started with to be adopted.
        self.spec: dict[str, Any] = {
            "workers": workers,
            "options": dataclasses.asdict(self.options),
            "python": sys.executable,
            "version": kubelb.__version__,
        }
        self.adopted = False
        self.restarts = 0
        self.restart_cause: str | None = None
        self._exited: Callable[[], None] | None = None
        self._config: proxy.ProxyConfig | None = None
        self._proc: procs.Proc | None = None
        self._client: control.Client | None = None
        self._applied_on: control.Client | None = None  # the connection `_config` went over
        self._fifo: logpipe.Fifo | None = None
        self._tasks: list[asyncio.Task[None]] = []  # the reader and log pump of `_proc`
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Adopt the recorded proxy, or start one; it listens once it has a configuration."""
        await self._launch(adopt=True)
        self._supervisor = asyncio.create_task(self._supervise(), name="python-dataplane")

    async def apply(self, config: proxy.ProxyConfig) -> None:
        self._config = config
        client = self._client
        if client is None or client.closed.is_set():
            return  # the proxy is restarting: it gets `_config` once it runs
        await self._send(client, config)

    async def _send(self, client: control.Client, config: proxy.ProxyConfig) -> None:
        body = await asyncio.to_thread(codec.to_dict, config)
        try:
            async with asyncio.timeout(APPLY_TIMEOUT_SECONDS):
                await client.request({"op": "apply", "config": body})
        except (control.ControlClosed, TimeoutError) as e:
            logger.warning("Python data plane: configuration not applied (%s); it is given again "
                           "when the data plane runs", str(e) or type(e).__name__)  # fmt: skip
            return
        if config is self._config:
            self._applied_on = client

    def ready(self) -> bool:
        client = self._client
        return client is not None and client is self._applied_on and not client.closed.is_set()

    def rejection(self) -> loadbalancers.Rejection | None:
        return None  # a configuration it cannot apply is logged and the last good one kept

    def watch_rejections(self, changed: Callable[[], None]) -> None:
        """Nothing to watch: see `rejection`."""

    def watch_exits(self, exited: Callable[[], None]) -> None:
        self._exited = exited

    def not_ready_message(self) -> str | None:
        return self.restart_cause

    def sockets(self) -> list[tuple[str, int]]:
        return []  # its control socket is a Unix socket: no LoadBalancer endpoint can name it

    def status(self) -> dict[str, Any]:
        proc = self._proc
        reported = self._client.status if self._client is not None else {}
        return {
            **reported,
            "ready": self.ready(),
            "pid": proc.pid if proc is not None and proc.returncode is None else None,
            "adopted": self.adopted,
            "restarts": self.restarts,
            "restartCause": self.restart_cause,
        }

    async def close(self) -> None:
        self._stopping = True
        proc, client = self._proc, self._client
        try:
            if proc is not None and proc.returncode is None:
                if client is not None and not client.closed.is_set():
                    with contextlib.suppress(control.ControlClosed, TimeoutError):
                        async with asyncio.timeout(STOP_GRACE_SECONDS):
                            await client.request({"op": "stop", "drain": self.drain_seconds})
                else:
                    _signal_group(proc.pid, signal.SIGTERM)
                try:
                    async with asyncio.timeout(self.drain_seconds + STOP_GRACE_SECONDS):
                        await proc.wait()
                except TimeoutError:
                    logger.warning("Python data plane (pid %d) did not stop; killing it", proc.pid)
                    _signal_group(proc.pid, signal.SIGKILL)
                    await proc.wait()
            if self._supervisor is not None:
                self._supervisor.cancel()
                await asyncio.gather(self._supervisor, return_exceptions=True)
            restarted = self._proc
            if restarted is not proc and restarted is not None and restarted.returncode is None:
                _signal_group(restarted.pid, signal.SIGKILL)  # started while we were stopping
                await restarted.wait()
        finally:
            await self._release()
            (self.dir / control.RECORD).unlink(missing_ok=True)

    async def _supervise(self) -> None:
        failures = 0
        while True:
            loop = asyncio.get_running_loop()
            started = loop.time()
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            adopted = isinstance(proc, procs.Adopted)
            await self._release()
            if self._stopping:
                return
            if loop.time() - started > self.restart_backoff.cap:
                failures = 0
            delay = self.restart_backoff.delay(failures)
            failures += 1
            self.restarts += 1
            what = "exited" if adopted else _describe(code)
            self.restart_cause = f"Python data plane restarting after it {what}"
            if self._exited is not None:
                self._exited()
            logger.warning("Python data plane (pid %d) %s; restarting in %.1f s", proc.pid, what,
                           delay)  # fmt: skip
            await asyncio.sleep(delay)
            while True:
                try:
                    await self._launch(adopt=False)
                    break
                except OSError:
                    logger.exception("the Python data plane could not be started")
                    await asyncio.sleep(self.restart_backoff.delay(failures))
                    failures += 1
            self.restart_cause = None

    async def _launch(self, *, adopt: bool) -> None:
        """Adopt (when `adopt`) or start the proxy, connect to it and hand it the configuration."""
        self.dir.mkdir(parents=True, exist_ok=True)
        found = await self._adoptable() if adopt else None
        if found is None:
            await self._replace_recorded()
        fifo = logpipe.Fifo(self.dir / "stderr.fifo")
        proc: procs.Proc
        try:
            if found is not None:
                proc, client = found
            else:
                proc, path = await self._spawn(fifo)
                client = await control.Client.connect(path)
        except BaseException:
            fifo.close()
            raise
        finally:
            fifo.close_writer()
        self._proc, self._client, self._fifo = proc, client, fifo
        self.adopted = found is not None
        self._tasks = [
            asyncio.create_task(client.run(), name="python-dataplane-control"),
            asyncio.create_task(fifo.pump(_log_line), name="python-dataplane-log"),
        ]
        logger.info("Python data plane %s (pid %d)", "adopted" if found else "started", proc.pid)
        if self._config is not None:
            await self._send(client, self._config)

    async def _adoptable(self) -> tuple[procs.Adopted, control.Client] | None:
        record = control.Record.read(self.dir)
        if record is None or not record.running() or record.spec != self.spec:
            return None
        try:
            proc = procs.Adopted(record.pid)
        except ProcessLookupError:
            return None
        try:
            client = await control.Client.connect(record.socket)
        except OSError as e:
            logger.warning("Python data plane (pid %d) does not answer on %s (%s); replacing it",
                           record.pid, record.socket, e)  # fmt: skip
            proc.close()
            return None
        return proc, client

    async def _replace_recorded(self) -> None:
        """A recorded proxy that still runs but is not adopted must free its ports first."""
        record = control.Record.read(self.dir)
        if record is not None and record.running():
            logger.info("Python data plane (pid %d) was started with other settings; replacing "
                        "it", record.pid)  # fmt: skip
            try:
                old = procs.Adopted(record.pid)
            except ProcessLookupError:
                old = None
            _signal_group(record.pid, signal.SIGKILL)
            if old is not None:
                await old.wait()
        (self.dir / control.RECORD).unlink(missing_ok=True)

    async def _spawn(self, fifo: logpipe.Fifo) -> tuple[procs.Proc, str]:
        path = control.socket_path(self.dir)
        path.unlink(missing_ok=True)
        # Listening before the proxy starts: we connect at once, it reads when it is up.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            listener.listen(16)
            log = fifo.open_writer()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kubelb.dataplane.daemon",
                "--control-fd", str(listener.fileno()), "--workers", str(self.workers),
                "--options", json.dumps(self.spec["options"]),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(listener.fileno(),), start_new_session=True,
            )  # fmt: skip
        finally:
            listener.close()
        record = control.Record(pid=proc.pid, start_time=control.start_time(proc.pid) or 0,
                                socket=str(path), spec=self.spec)  # fmt: skip
        await asyncio.to_thread(record.write, self.dir)
        return proc, str(path)

    async def _release(self) -> None:
        """Stop reading from a proxy that is gone (or that we leave running)."""
        tasks, self._tasks = self._tasks, []
        if self._client is not None:
            self._client.close()
        if isinstance(self._proc, procs.Adopted) and self._proc.returncode is None:
            self._proc.close()  # stop watching
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._fifo is not None:
            self._fifo.close()
            self._fifo = None


def _log_line(line: str) -> None:
    match = _LOG_LINE.search(line)
    if match is None:
        logger.info("data plane: %s", line)
        return
    logging.getLogger(match[2]).log(_LEVELS[match[1]], "%s", match[3])


def _describe(code: int) -> str:
    return f"was killed by {procs.signal_name(-code)}" if code < 0 else f"exited with code {code}"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """The proxy leads its own process group, with its workers in it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
