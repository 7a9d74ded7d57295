"""Runs Envoy processes on this host: the process `Deployer` (standalone mode and tests).

Input: `ensure(node_id, spec)` / `remove(node_id)` / `close()`. Output: one Envoy child process per
node id, configured by a generated bootstrap (`kubelb.envoy.bootstrap`) to fetch everything else
from our xDS server. Per node a supervision task owned by the supervisor:
- starts Envoy with `asyncio.create_subprocess_exec` in its own session (so a terminal's Ctrl-C
  reaches only us), with a dynamic hot-restart base id so several Envoys coexist on one host, and
  its soft file descriptor limit raised to the hard one (a socket per listener per worker);
- `detach=True` (process and standalone mode): Envoy outlives a crash of this process (it runs
  under `kubelb.envoy.shim`, as Envoy dies with its parent by its own PR_SET_PDEATHSIG). Its pid,
  start time, admin address and bootstrap hash are recorded in `<state dir>/<node>/envoy.json`,
  and a supervisor started later adopts a live Envoy with the same bootstrap instead of starting
  another one; Envoy keeps its configuration and reconnects to xDS by itself. Otherwise
  PR_SET_PDEATHSIG makes Envoy die with this process. `reap(state_dir)` kills recorded Envoys
  (tests);
- polls the admin `/ready` until Envoy is LIVE, through one aiohttp session per supervisor
  (opened on first use, closed by `close()`; one per socket path for Envoys whose spec asks
  for `admin_pipe`: admin on the Unix socket `admin.sock` in the node's state directory);
- restarts Envoy when it exits unexpectedly, with capped exponential backoff per cause (a kill
  from outside or a configuration rolled back by `on_exit` restarts within `QUICK_RESTART`'s cap),
  and says why in `restart_cause`;
- logs Envoy's stderr through Python logging (`kubelb.envoy.process`; Envoy's info as DEBUG,
  warnings and errors as such) and its stdout, the access log, at INFO (`kubelb.envoy.access`).
  Both arrive through FIFOs in the node's folder (a restarted supervisor reopens them), read in
  chunks: a line longer than `MAXprocs.LOG_LINE` is cut with a marker, and a reader never stops, so
  Envoy never blocks on a full pipe;
- on remove/close drains: health check fails, `POST /drain_listeners?graceful`, waits
  `drain_seconds`, then SIGTERM and SIGKILL after `stop_timeout_seconds`.

PR_SET_PDEATHSIG fires when the *thread* that forked exits: run the supervisor on an event loop
in the main thread (as `asyncio.run` does).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from kubelb.api import config as api_config
from kubelb.envoy import binary, bootstrap, deployer, logpipe, procs
from kubelb.observe import metrics
from kubelb.util import backoff, naming, ports

logger = logging.getLogger(__name__)
process_logger = logging.getLogger("kubelb.envoy.process")
access_logger = logging.getLogger("kubelb.envoy.access")

_LOG_FORMAT = "[%l][%n] %v"
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
_SHIM = Path(__file__).with_name("shim.py")
# An Envoy that ran longer than the cap before exiting restarts at the initial delay again.
RESTART_BACKOFF = backoff.Backoff(initial=0.5, cap=30.0)
# Exits that restarting fixes: killed from outside, or a configuration `on_exit` rolled back.
QUICK_RESTART = backoff.Backoff(initial=0.2, cap=2.0)
_ADMIN_TIMEOUT = aiohttp.ClientTimeout(total=2.0)
# What an admin request raises when Envoy is not (yet, or any more) there to answer.
ADMIN_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
RECORD = "envoy.json"
_LOG_TAIL = 20
# Sockets besides the listeners': admin, xDS, upstream and downstream connections.
FD_RESERVE = 1024


OnExit = Callable[[procs.Exit], bool]


class EnvoySupervisor:
    """Implements `deployer.Deployer` with local Envoy processes."""

    def __init__(
        self,
        state_dir: Path,
        *,
        envoy_binary: str | os.PathLike[str] | None = None,
        restart_backoff: backoff.Backoff = RESTART_BACKOFF,
        detach: bool = False,
        on_exit: OnExit | None = None,
    ) -> None:
        """`on_exit(exit)` is told of every unexpected exit before the restart; True means it
        changed what Envoy will load (a rollback), so the restart need not back off."""
        self.state_dir = Path(state_dir)
        self.binary = binary.find_envoy(envoy_binary)
        self.restart_backoff = restart_backoff
        self.detach = detach
        self.on_exit = on_exit
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

    def adopted(self, node_id: str) -> bool:
        """The node's Envoy was left running by an earlier supervisor and taken over."""
        envoy = self._envoys.get(node_id)
        return envoy is not None and envoy.adopted

    def restart_cause(self, node_id: str) -> str | None:
        """Why the node's Envoy is restarting, until it is ready again, e.g. "Envoy restarting
        after exit code 1 (Too many open files)"."""
        envoy = self._envoys.get(node_id)
        return envoy.restart_cause if envoy else None

    def last_exit(self, node_id: str) -> procs.Exit | None:
        envoy = self._envoys.get(node_id)
        return envoy.last_exit if envoy else None

    def will_adopt(self, node_id: str, spec: deployer.EnvoySpec) -> bool:
        """Whether `ensure(node_id, spec)` would adopt a running Envoy (which keeps its
        configuration until xDS serves one) rather than start a new one."""
        if not self.detach or node_id in self._envoys:
            return False
        found = _Envoy(self, node_id, spec).adoptable()
        if found is None:
            return False
        found[0].close()
        return True

    def capacity_problem(self, node_id: str, listeners: int) -> str | None:
        """Why `listeners` listeners cannot fit the file descriptors Envoy may open, or None.
        Each listener takes a socket per worker thread (reuse_port) and one more to start."""
        envoy = self._envoys.get(node_id)
        concurrency = envoy.spec.concurrency if envoy else None
        workers = concurrency or os.cpu_count() or 1
        limit = procs.fd_limit()
        needed = listeners * (workers + 1) + FD_RESERVE
        if needed <= limit:
            return None
        fits = max(0, (limit - FD_RESERVE) // (workers + 1))
        return (f"{listeners} listeners need about {needed} file descriptors in Envoy "
                f"({workers} workers), over the limit of {limit} (RLIMIT_NOFILE): at most "
                f"{fits} fit")  # fmt: skip


def reap(state_dir: Path) -> list[int]:
    """Kill every Envoy recorded under `state_dir` that still runs (for tests, whose clean-up
    must reach Envoys that outlived their kubelb); return their pids."""
    killed = []
    for path in Path(state_dir).rglob(RECORD):
        record = _read_record(path)
        if record is not None and procs.start_time(record["pid"]) == record["start_time"]:
            with contextlib.suppress(ProcessLookupError):
                # The shim leads its own process group, with Envoy in it.
                os.killpg(record["pid"], signal.SIGKILL)
                killed.append(record["pid"])
        path.unlink(missing_ok=True)
    return killed


class _Envoy:
    """One node's Envoy and the task that keeps it running."""

    def __init__(self, owner: EnvoySupervisor, node_id: str, spec: deployer.EnvoySpec) -> None:
        self.owner = owner
        self.node_id = node_id
        self.spec = spec
        self.dir = owner.state_dir / naming.dns1035(node_id)
        self.process: procs.Proc | None = None
        self.admin_port: int | None = None
        self.admin_path: str | None = None
        self.ready = asyncio.Event()
        self.restarts = 0
        self.adopted = False
        self.restart_cause: str | None = None
        self.last_exit: procs.Exit | None = None
        self.log_tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL)
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
        if self._task is not None:
            try:  # the task ends by itself once its Envoy is gone; cancel only if that hangs
                async with asyncio.timeout(self.spec.stop_timeout_seconds):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        (self.dir / RECORD).unlink(missing_ok=True)

    async def _supervise(self) -> None:
        failures: dict[str, int] = {}  # exits in a row per cause, each soon after its start
        adopt = self.owner.detach
        while not self._stopping.is_set():
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                code = await self._run_once(adopt=adopt)
            except OSError:
                logger.exception("Envoy for node %r could not be started", self.node_id)
                code = 1
            adopt = False
            if self._stopping.is_set():
                return
            exit_ = procs.Exit(self.node_id, code, tuple(self.log_tail))
            self.last_exit = exit_
            rolled_back = False
            if self.owner.on_exit is not None:
                try:
                    rolled_back = self.owner.on_exit(exit_)
                except Exception:
                    logger.exception("on_exit of Envoy for node %r failed", self.node_id)
            cause = "quick" if rolled_back or exit_.killed else "failed"
            retry = QUICK_RESTART if cause == "quick" else self.owner.restart_backoff
            retry = backoff.Backoff(initial=min(retry.initial, self.owner.restart_backoff.initial),
                                    cap=min(retry.cap, self.owner.restart_backoff.cap))  # fmt: skip
            if loop.time() - started > retry.cap:
                failures.clear()
            delay = retry.delay(failures.get(cause, 0))
            failures[cause] = failures.get(cause, 0) + 1
            self.restarts += 1
            self.restart_cause = f"Envoy restarting after {exit_.describe()}"
            metrics.ENVOY_PROXY_RESTARTS.labels(namespace=self.node_id).inc()
            logger.warning(
                "Envoy for node %r: %s; restarting in %.1f s%s",
                self.node_id,
                exit_.describe(),
                delay,
                " (configuration rolled back)" if rolled_back else "",
                extra={"tenant": self.node_id},
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    def adoptable(self) -> tuple[procs.Adopted, int, str | None] | None:
        """The recorded Envoy and its admin port and socket, when it still runs this spec's
        bootstrap."""
        record = _read_record(self.dir / RECORD)
        if record is None or procs.start_time(record["pid"]) != record["start_time"]:
            return None
        admin_path = record.get("admin_path")
        if (admin_path is not None) != self.spec.admin_pipe:
            return None
        spec = dataclasses.replace(self.spec, admin_port=record["admin_port"])
        if (record["bootstrap"] != _digest(self._bootstrap(spec, admin_path))
                or record["binary"] != str(self.owner.binary)):  # fmt: skip
            return None
        try:
            return procs.Adopted(record["pid"]), record["admin_port"], admin_path
        except ProcessLookupError:
            return None

    async def _adopt_or_replace(self) -> tuple[procs.Proc, int, str | None] | None:
        found = self.adoptable()
        if found is not None:
            return found
        record = _read_record(self.dir / RECORD)
        if record is not None and procs.start_time(record["pid"]) == record["start_time"]:
            # Ours, from an earlier run, but with another bootstrap: it must not keep the ports.
            logger.info("Envoy for node %r: pid %d runs another bootstrap; replacing it",
                        self.node_id, record["pid"])  # fmt: skip
            with contextlib.suppress(ProcessLookupError):
                await procs.terminate(procs.Adopted(record["pid"]), self.spec.stop_timeout_seconds)
            _release_shared_memory(self.dir / "base-id")
        (self.dir / RECORD).unlink(missing_ok=True)
        return None

    async def _run_once(self, *, adopt: bool) -> int | None:
        """Start (or adopt) Envoy, wait for it to become ready, then for it to exit; return its
        exit code (None when unknown)."""
        found = await self._adopt_or_replace() if adopt else None
        stdout = logpipe.Fifo(self.dir / "stdout.fifo")
        stderr = logpipe.Fifo(self.dir / "stderr.fifo")
        try:
            if found is not None:
                proc, admin_port, admin_path = found
                self.adopted = True
            else:
                proc, admin_port, admin_path = await self._spawn(stdout, stderr)
                self.adopted = False
        finally:
            stdout.close_writer()
            stderr.close_writer()
        spec = dataclasses.replace(self.spec, admin_port=admin_port)
        self.process, self.admin_port, self.admin_path = proc, admin_port or None, admin_path
        if self._stopping.is_set():  # stop() ran while Envoy was starting: it saw no process
            await procs.terminate(proc, self.spec.stop_timeout_seconds)
        logger.info(
            "Envoy for node %r %s (pid %d, admin %s)",
            self.node_id,
            "adopted" if found else "started",
            proc.pid,
            admin_path or f"{spec.admin_address}:{admin_port}",
            extra={"tenant": self.node_id},
        )
        self.log_tail.clear()
        pumps = [
            asyncio.create_task(stderr.pump(self._log_stderr)),
            asyncio.create_task(stdout.pump(self._log_stdout)),
        ]
        readiness = asyncio.create_task(self._await_ready(proc, spec))
        try:
            code: int | None = await proc.wait()
        finally:
            self.ready.clear()
            readiness.cancel()
            if proc.returncode is None:  # cancelled: never leave Envoy behind
                await procs.terminate(proc, self.spec.stop_timeout_seconds)
            # Envoy is gone: free its shared memory before anything else can be cancelled.
            _release_shared_memory(self.dir / "base-id")
            await asyncio.gather(readiness, *pumps, return_exceptions=True)
            stdout.close()
            stderr.close()
        return None if isinstance(proc, procs.Adopted) else code

    async def _spawn(
        self, stdout: logpipe.Fifo, stderr: logpipe.Fifo
    ) -> tuple[procs.Proc, int, str | None]:
        admin_path = _admin_socket(self.dir) if self.spec.admin_pipe else None
        admin_port = (
            0 if admin_path else self.spec.admin_port or _free_port(self.spec.admin_address)
        )
        spec = dataclasses.replace(self.spec, admin_port=admin_port)
        config = self.dir / "bootstrap.json"
        text = self._bootstrap(spec, admin_path)
        await asyncio.to_thread(_write, config, text)
        command = self._command(spec, config)
        if self.owner.detach:  # the shim raises the fd limit itself
            command = [sys.executable, "-I", str(_SHIM), *command]
        else:
            command = procs.command_for(command)
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout.open_writer(),
            stderr=stderr.open_writer(),
            start_new_session=True,
        )
        if self.owner.detach:
            record = {
                "pid": proc.pid,
                "start_time": procs.start_time(proc.pid),
                "admin_address": spec.admin_address,
                "admin_port": admin_port,
                "admin_path": admin_path,
                "bootstrap": _digest(text),
                "binary": str(self.owner.binary),
            }
            await asyncio.to_thread(_write, self.dir / RECORD, json.dumps(record) + "\n")
        return proc, admin_port, admin_path

    def _bootstrap(self, spec: deployer.EnvoySpec, admin_path: str | None) -> str:
        return bootstrap.to_json(bootstrap.render(self.node_id, spec, admin_path=admin_path))

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

    async def _await_ready(self, proc: procs.Proc, spec: deployer.EnvoySpec) -> None:
        while proc.returncode is None:
            try:
                status, _ = await self.owner.request(
                    spec.admin_address, spec.admin_port, "GET", "/ready", unix=self.admin_path
                )
            except ADMIN_ERRORS:
                status = 0
            if status == 200:
                self.restart_cause = None
                self.ready.set()
                logger.info("Envoy for node %r is ready", self.node_id)
                return
            await asyncio.sleep(0.1)

    async def _drain_and_stop(self, proc: procs.Proc) -> None:
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
                async with asyncio.timeout(self.spec.drain_seconds):
                    await proc.wait()
        await procs.terminate(proc, self.spec.stop_timeout_seconds)
        logger.info("Envoy for node %r stopped (code %s)", self.node_id, proc.returncode)

    def _log_stderr(self, line: str) -> None:
        match = procs.LOG_LINE.match(line)
        level, component, text = (
            (_LEVELS.get(match[1], logging.INFO), match[2], match[3])
            if match
            else (logging.INFO, "", line)
        )
        # What may tell why Envoy exits: its warnings and errors, without crash backtraces.
        if level >= logging.WARNING and component != "backtrace" and not text.startswith("#"):
            self.log_tail.append(line)
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


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
        int(record["pid"]), int(record["start_time"]), int(record["admin_port"])
        str(record["bootstrap"]), str(record["binary"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return dict(record)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
    return ports.free_port(host)


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
    """Replace `path` atomically: a crash never leaves half a bootstrap or record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
