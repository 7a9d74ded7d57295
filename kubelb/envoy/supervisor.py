"""Runs Envoy processes on this host: the process `Deployer` (standalone mode and tests).

Input: `ensure(node_id, spec)` / `remove(node_id)` / `close()`. Output: one Envoy child process per
node id, configured by a generated bootstrap (`kubelb.envoy.bootstrap`) to fetch everything else
from our xDS server. Per node a supervision task owned by the supervisor:
- starts Envoy with `asyncio.create_subprocess_exec` in its own session (so a terminal's Ctrl-C
  reaches only us), with PR_SET_PDEATHSIG so it dies with this process, and a dynamic hot-restart
  base id so several Envoys coexist on one host;
- polls the admin `/ready` until Envoy is LIVE, through one aiohttp session per supervisor
  (opened on first use, closed by `close()`; one per socket path for Envoys whose spec asks
  for `admin_pipe`: admin on the Unix socket `admin.sock` in the node's state directory);
- restarts Envoy when it exits unexpectedly, with capped exponential backoff;
- logs Envoy's stderr through Python logging (`kubelb.envoy.process`; Envoy's info as DEBUG,
  warnings and errors as such) and its stdout, the access log, at INFO (`kubelb.envoy.access`);
- on remove/close drains: health check fails, `POST /drain_listeners?graceful`, waits
  `drain_seconds`, then SIGTERM and SIGKILL after `stop_timeout_seconds`.

PR_SET_PDEATHSIG fires when the *thread* that forked exits: run the supervisor on an event loop
in the main thread (as `asyncio.run` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import aiohttp

from kubelb.api import config as api_config
from kubelb.envoy import binary, bootstrap, deployer
from kubelb.observe import metrics
from kubelb.util import backoff, children, naming

logger = logging.getLogger(__name__)
process_logger = logging.getLogger("kubelb.envoy.process")
access_logger = logging.getLogger("kubelb.envoy.access")

_LOG_FORMAT = "[%l][%n] %v"
_LOG_LINE = re.compile(r"^\[(\w+)\]\[([\w.-]*)\] ?(.*)$")
# Envoy's info level is routine chatter (start-up inventory, every xDS update): DEBUG for us.
_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.DEBUG,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_SHM_DIR = Path("/dev/shm")
_UNIX_PATH_MAX = 108  # sun_path, with its terminating NUL
# An Envoy that ran longer than the cap before exiting restarts at the initial delay again.
RESTART_BACKOFF = backoff.Backoff(initial=0.5, cap=30.0)
_ADMIN_TIMEOUT = aiohttp.ClientTimeout(total=2.0)
# What an admin request raises when Envoy is not (yet, or any more) there to answer.
ADMIN_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class EnvoySupervisor:
    """Implements `deployer.Deployer` with local Envoy processes."""

    def __init__(
        self,
        state_dir: Path,
        *,
        envoy_binary: str | os.PathLike[str] | None = None,
        restart_backoff: backoff.Backoff = RESTART_BACKOFF,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.binary = binary.find_envoy(envoy_binary)
        self.restart_backoff = restart_backoff
        self._envoys: dict[str, _Envoy] = {}
        self._admin_session: aiohttp.ClientSession | None = None
        self._pipe_sessions: dict[str, aiohttp.ClientSession] = {}

    async def ensure(self, node_id: str, spec: deployer.EnvoySpec) -> None:
        current = self._envoys.get(node_id)
        if current is not None and current.spec == spec:
            return
        if current is not None:
            logger.info("Envoy for node %r: spec changed, replacing it", node_id)
            await self.remove(node_id)
        envoy = _Envoy(self, node_id, spec)
        self._envoys[node_id] = envoy
        envoy.start()
        metrics.ENVOY_PROXIES.labels(namespace=node_id, topology=api_config.TOPOLOGY).set(1)
        metrics.ENVOY_PROXY_CREATES.labels(namespace=node_id).inc()

    async def remove(self, node_id: str) -> None:
        envoy = self._envoys.pop(node_id, None)
        if envoy is None:
            return
        await envoy.stop()
        metrics.ENVOY_PROXIES.remove(node_id, api_config.TOPOLOGY)
        metrics.ENVOY_PROXY_DELETES.labels(namespace=node_id).inc()

    def ready(self, node_id: str) -> bool:
        envoy = self._envoys.get(node_id)
        return envoy is not None and envoy.ready.is_set()

    async def wait_ready(self, node_id: str) -> None:
        """Wait until the node's Envoy reports ready (bound it with `asyncio.timeout`)."""
        await self._envoys[node_id].ready.wait()

    async def close(self) -> None:
        """Drain and stop every Envoy. The supervisor stays usable: `ensure` starts anew."""
        try:
            await asyncio.gather(*(self.remove(n) for n in list(self._envoys)))
        finally:
            session, self._admin_session = self._admin_session, None
            pipes, self._pipe_sessions = self._pipe_sessions, {}
            for s in (session, *pipes.values()):
                if s is not None:
                    await s.close()

    async def admin(self, node_id: str, method: str, path: str) -> tuple[int, str]:
        """One request to the admin interface of the node's running Envoy: (status, body).
        Raises LookupError when the node has no Envoy, or one of `ADMIN_ERRORS`."""
        envoy = self._envoys.get(node_id)
        if envoy is None or (envoy.admin_port is None and envoy.admin_path is None):
            raise LookupError(f"no Envoy runs for node {node_id!r}")
        return await self.request(envoy.spec.admin_address, envoy.admin_port or 0, method, path,
                                  unix=envoy.admin_path)  # fmt: skip

    async def request(
        self, host: str, port: int, method: str, path: str, *, unix: str | None = None
    ) -> tuple[int, str]:
        """One HTTP request to an Envoy admin interface or probe listener: (status, body).
        `unix`: the admin interface's Unix socket, used instead of host and port."""
        if unix is not None:
            host, port = "localhost", 80
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        session = self._session() if unix is None else self._pipe_session(unix)
        async with session.request(
            method, f"http://{authority}{path}", timeout=_ADMIN_TIMEOUT
        ) as response:
            return response.status, await response.text(errors="replace")

    def _session(self) -> aiohttp.ClientSession:
        if self._admin_session is None or self._admin_session.closed:
            # A fresh connection per request: a kept-alive one may point at an Envoy that has
            # exited, and an admin port is reused by the next Envoy.
            connector = aiohttp.TCPConnector(force_close=True)
            self._admin_session = aiohttp.ClientSession(connector=connector)
        return self._admin_session

    def _pipe_session(self, path: str) -> aiohttp.ClientSession:
        session = self._pipe_sessions.get(path)
        if session is None or session.closed:
            connector = aiohttp.UnixConnector(path=path, force_close=True)
            session = self._pipe_sessions[path] = aiohttp.ClientSession(connector=connector)
        return session

    def pid(self, node_id: str) -> int | None:
        envoy = self._envoys.get(node_id)
        proc = envoy.process if envoy else None
        return proc.pid if proc is not None and proc.returncode is None else None

    def admin_port(self, node_id: str) -> int | None:
        envoy = self._envoys.get(node_id)
        return envoy.admin_port if envoy else None

    def admin_path(self, node_id: str) -> str | None:
        """The admin interface's Unix socket (specs with `admin_pipe`), else None."""
        envoy = self._envoys.get(node_id)
        return envoy.admin_path if envoy else None

    def restarts(self, node_id: str) -> int:
        envoy = self._envoys.get(node_id)
        return envoy.restarts if envoy else 0


class _Envoy:
    """One node's Envoy and the task that keeps it running."""

    def __init__(self, owner: EnvoySupervisor, node_id: str, spec: deployer.EnvoySpec) -> None:
        self.owner = owner
        self.node_id = node_id
        self.spec = spec
        self.dir = owner.state_dir / naming.dns1035(node_id)
        self.process: asyncio.subprocess.Process | None = None
        self.admin_port: int | None = None
        self.admin_path: str | None = None
        self.ready = asyncio.Event()
        self.restarts = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"envoy-{self.node_id}")
        self._task.add_done_callback(self._task_done)

    async def stop(self) -> None:
        self._stopping.set()
        proc = self.process
        if proc is not None and proc.returncode is None:
            await self._drain_and_stop(proc)
        if self._task is None:
            return
        try:  # the task ends by itself once its Envoy is gone; cancel only if that hangs
            await asyncio.wait_for(asyncio.shield(self._task), self.spec.stop_timeout_seconds)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _supervise(self) -> None:
        failures = 0  # exits in a row, each within the backoff's cap of its start
        while not self._stopping.is_set():
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                code = await self._run_once()
            except OSError:
                logger.exception("Envoy for node %r could not be started", self.node_id)
                code = None
            if self._stopping.is_set():
                return
            retry = self.owner.restart_backoff
            failures = 0 if loop.time() - started > retry.cap else failures
            delay = retry.delay(failures)
            failures += 1
            self.restarts += 1
            metrics.ENVOY_PROXY_RESTARTS.labels(namespace=self.node_id).inc()
            logger.warning(
                "Envoy for node %r exited (code %s); restarting in %.1f s",
                self.node_id,
                code,
                delay,
                extra={"tenant": self.node_id},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self) -> int:
        """Start Envoy, wait for it to become ready, then for it to exit; return its exit code."""
        admin_path = _admin_socket(self.dir) if self.spec.admin_pipe else None
        admin_port = (
            0 if admin_path else self.spec.admin_port or _free_port(self.spec.admin_address)
        )
        spec = dataclasses.replace(self.spec, admin_port=admin_port)
        config = self.dir / "bootstrap.json"
        rendered = bootstrap.render(self.node_id, spec, admin_path=admin_path)
        await asyncio.to_thread(_write, config, bootstrap.to_json(rendered))
        proc = await asyncio.create_subprocess_exec(
            *self._command(spec, config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=children.die_with_parent(),
        )
        self.process, self.admin_port, self.admin_path = proc, admin_port or None, admin_path
        if self._stopping.is_set():  # stop() ran while Envoy was starting: it saw no process
            await _terminate(proc, self.spec.stop_timeout_seconds)
        logger.info(
            "Envoy for node %r started (pid %d, admin %s)",
            self.node_id,
            proc.pid,
            admin_path or f"{spec.admin_address}:{admin_port}",
            extra={"tenant": self.node_id},
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        pumps = [
            asyncio.create_task(_pump(proc.stderr, self._log_stderr)),
            asyncio.create_task(_pump(proc.stdout, self._log_stdout)),
        ]
        readiness = asyncio.create_task(self._await_ready(proc, spec))
        try:
            code = await proc.wait()
        finally:
            self.ready.clear()
            readiness.cancel()
            if proc.returncode is None:  # cancelled: never leave Envoy behind
                await _terminate(proc, self.spec.stop_timeout_seconds)
            # Envoy is gone: free its shared memory before anything else can be cancelled.
            _release_shared_memory(self.dir / "base-id")
            await asyncio.gather(readiness, *pumps, return_exceptions=True)
        return code

    def _command(self, spec: deployer.EnvoySpec, config: Path) -> list[str]:
        args = [
            str(self.owner.binary),
            "--config-path",
            str(config),
            "--use-dynamic-base-id",
            "--base-id-path",
            str(self.dir / "base-id"),
            "--log-level",
            spec.log_level,
            "--log-format",
            _LOG_FORMAT,
            "--drain-time-s",
            str(max(1, round(spec.drain_seconds))),
        ]
        if spec.concurrency is not None:
            args += ["--concurrency", str(spec.concurrency)]
        return [*args, *spec.extra_args]

    async def _await_ready(
        self, proc: asyncio.subprocess.Process, spec: deployer.EnvoySpec
    ) -> None:
        while proc.returncode is None:
            try:
                status, _ = await self.owner.request(
                    spec.admin_address, spec.admin_port, "GET", "/ready", unix=self.admin_path
                )
            except ADMIN_ERRORS:
                status = 0
            if status == 200:
                self.ready.set()
                logger.info("Envoy for node %r is ready", self.node_id)
                return
            await asyncio.sleep(0.1)

    async def _drain_and_stop(self, proc: asyncio.subprocess.Process) -> None:
        port, unix = self.admin_port, self.admin_path
        if port is not None or unix is not None:
            for path in ("/healthcheck/fail", "/drain_listeners?graceful"):
                try:
                    await self.owner.request(self.spec.admin_address, port or 0, "POST", path,
                                             unix=unix)  # fmt: skip
                except ADMIN_ERRORS as e:
                    logger.debug("Envoy for node %r: %s failed: %s", self.node_id, path, e)
            logger.info(
                "Envoy for node %r draining for %.1f s", self.node_id, self.spec.drain_seconds
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), self.spec.drain_seconds)
        await _terminate(proc, self.spec.stop_timeout_seconds)
        logger.info("Envoy for node %r stopped (code %s)", self.node_id, proc.returncode)

    def _log_stderr(self, line: str) -> None:
        match = _LOG_LINE.match(line)
        level, component, text = (
            (_LEVELS.get(match[1], logging.INFO), match[2], match[3])
            if match
            else (logging.INFO, "", line)
        )
        process_logger.log(
            level, "envoy[%s] %s: %s", self.node_id, component, text, extra={"tenant": self.node_id}
        )

    def _log_stdout(self, line: str) -> None:
        access_logger.info("envoy[%s] %s", self.node_id, line, extra={"tenant": self.node_id})

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "supervision of Envoy for node %r failed", self.node_id, exc_info=task.exception()
            )


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _pump(stream: asyncio.StreamReader, sink: Callable[[str], None]) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        if text:
            sink(text)


def _admin_socket(directory: Path) -> str:
    """`<directory>/admin.sock`, any stale one removed (a restarted Envoy binds it again). A
    path longer than a Unix socket allows gets a private temporary directory instead."""
    path = directory / "admin.sock"
    if len(os.fsencode(path)) >= _UNIX_PATH_MAX:
        path = Path(tempfile.mkdtemp(prefix="kubelb-envoy-")) / "admin.sock"
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return str(path)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _release_shared_memory(base_id_path: Path) -> None:
    """Envoy leaves its hot-restart shared memory behind even on a clean exit (and a killed
    Envoy cannot clean up): remove it, or every start leaks a file in /dev/shm."""
    try:
        base_id = int(base_id_path.read_text().strip())
        base_id_path.unlink()
    except (OSError, ValueError):
        return
    with contextlib.suppress(OSError):
        (_SHM_DIR / f"envoy_shared_memory_{base_id * 10}").unlink()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
