"""Runs Envoy processes on this host: the process `Deployer` (standalone mode and tests).

Input: `ensure(node_id, spec)` / `remove(node_id)` / `close()`. Output: one Envoy child process per
node id, configured by a generated bootstrap (`kubelb.envoy.bootstrap`) to fetch everything else
from our xDS server. Per node a supervision task owned by the supervisor:
- starts Envoy with `asyncio.create_subprocess_exec` in its own session (so a terminal's Ctrl-C
  reaches only us), with PR_SET_PDEATHSIG so it dies with this process, and a dynamic hot-restart
  base id so several Envoys coexist on one host;
- polls the admin `/ready` until Envoy is LIVE (admin on a free loopback port, or on the Unix
  socket `admin.sock` in the node's state directory when the spec asks for `admin_pipe`);
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

from kubelb.envoy import binary, bootstrap, deployer
from kubelb.observe import metrics
from kubelb.util import children, naming

logger = logging.getLogger(__name__)
process_logger = logging.getLogger("kubelb.envoy.process")
access_logger = logging.getLogger("kubelb.envoy.access")

TOPOLOGY = "shared"
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


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def next(self, delay: float) -> float:
        return min(self.maximum, max(self.initial, delay * self.factor))


class EnvoySupervisor:
    """Implements `deployer.Deployer` with local Envoy processes."""

    def __init__(
        self,
        state_dir: Path,
        *,
        envoy_binary: str | os.PathLike[str] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.binary = binary.find_envoy(envoy_binary)
        self.backoff = backoff or Backoff()
        self._envoys: dict[str, _Envoy] = {}

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
        metrics.ENVOY_PROXIES.labels(namespace=node_id, topology=TOPOLOGY).set(1)
        metrics.ENVOY_PROXY_CREATES.labels(namespace=node_id).inc()

    async def remove(self, node_id: str) -> None:
        envoy = self._envoys.pop(node_id, None)
        if envoy is None:
            return
        await envoy.stop()
        metrics.ENVOY_PROXIES.remove(node_id, TOPOLOGY)
        metrics.ENVOY_PROXY_DELETES.labels(namespace=node_id).inc()

    def ready(self, node_id: str) -> bool:
        envoy = self._envoys.get(node_id)
        return envoy is not None and envoy.ready.is_set()

    async def wait_ready(self, node_id: str) -> None:
        """Wait until the node's Envoy reports ready (bound it with `asyncio.timeout`)."""
        await self._envoys[node_id].ready.wait()

    async def close(self) -> None:
        await asyncio.gather(*(self.remove(n) for n in list(self._envoys)))

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
        delay = 0.0
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
            delay = 0.0 if loop.time() - started > self.owner.backoff.maximum else delay
            delay = self.owner.backoff.next(delay)
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
                status, _ = await admin_request(
                    spec.admin_address, spec.admin_port, "GET", "/ready", unix=self.admin_path
                )
            except (OSError, TimeoutError, ValueError):
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
                    await admin_request(self.spec.admin_address, port or 0, "POST", path,
                                        unix=unix)  # fmt: skip
                except (OSError, TimeoutError, ValueError) as e:
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


async def admin_request(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    limit_seconds: float = 2.0,
    unix: str | None = None,
) -> tuple[int, str]:
    """One HTTP/1.1 request to Envoy's admin interface (or a probe listener): (status, body).
    `unix`: the admin interface's Unix socket, used instead of host and port."""
    async with asyncio.timeout(limit_seconds):
        if unix is not None:
            reader, writer = await asyncio.open_unix_connection(unix)
        else:
            reader, writer = await asyncio.open_connection(host, port)
        try:
            authority = f"[{host}]" if ":" in host else host
            writer.write(
                f"{method} {path} HTTP/1.1\r\nHost: {authority}:{port}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            return await _read_response(reader, f"{host}:{port}{path}")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader, where: str) -> tuple[int, str]:
    # Read by framing, not to EOF: Envoy delays closing its side (delayed_close_timeout).
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.split("\r\n")
    fields = status_line.split()
    if len(fields) < 2 or not fields[1].isdigit():
        raise ValueError(f"not an HTTP response from {where}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16):
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.read()
    return int(fields[1]), body.decode(errors="replace")


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
