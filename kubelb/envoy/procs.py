"""Envoy processes as the supervisor sees them: ours, or adopted from an earlier kubelb.

`Proc` is what supervision needs of either; `Adopted` watches an Envoy that is not our child
through a pidfd. `Exit` says why one ended (`describe`, from its exit status and last log lines).
`command_for` prepares an Envoy that is our own child: the file descriptor limit (`fd_limit`)
and death with its parent. `start_time` names a process beyond pid reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import resource
import signal
from pathlib import Path
from typing import Protocol

from kubelb.util import children

# Envoy's log line format as the supervisor sets it ("[%l][%n] %v"): level, logger, message.
LOG_LINE = re.compile(r"^\[(\w+)\]\[([\w.-]*)\] ?(.*)$")
KILL_SIGNALS = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}


@dataclasses.dataclass(frozen=True, slots=True)
class Exit:
    """Why an Envoy ended: given to `on_exit` and told in `restart_cause`."""

    node_id: str
    code: int | None  # the exit status; -N: killed by signal N; None: unknown (adopted Envoy)
    log_tail: tuple[str, ...]  # its last warning and error lines

    @property
    def killed(self) -> bool:
        """Stopped by a signal from outside, not by a failure of its own."""
        return self.code is not None and self.code < 0 and -self.code in KILL_SIGNALS

    def describe(self) -> str:
        if self.code is None:
            what = "it exited (an adopted Envoy: exit code unknown)"
        elif self.code < 0:
            what = f"signal {signal_name(-self.code)}"
        else:
            what = f"exit code {self.code}"
        reason = hint(self.log_tail)
        return f"{what} ({reason})" if reason else what


class Proc(Protocol):
    """What the supervisor needs of an Envoy process: ours (asyncio) or an adopted one."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class Adopted:
    """An Envoy started by an earlier supervisor: not our child, watched through a pidfd. Any
    number of `wait()` calls share one watch (the supervision task and a drain both wait)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        self._exit: asyncio.Future[None] | None = None
        self.returncode: int | None = None

    async def wait(self) -> int:
        if self.returncode is None:
            await asyncio.shield(self._exited())
        return 0  # unknown: only its parent learns the real status

    def _exited(self) -> asyncio.Future[None]:
        if self._exit is None:
            loop = asyncio.get_running_loop()
            self._exit = exit_ = loop.create_future()

            def on_exit() -> None:
                self.close()
                if not exit_.done():
                    exit_.set_result(None)

            loop.add_reader(self._pidfd, on_exit)
        return self._exit

    def close(self) -> None:
        """Stop watching (an Envoy still running keeps running)."""
        if self.returncode is None:
            if self._exit is not None:
                self._exit.get_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self.returncode = 0

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self._pidfd, sig)


async def terminate(proc: Proc, grace: float) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def fd_limit() -> int:
    """The file descriptor limit an Envoy child gets: our hard RLIMIT_NOFILE."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def command_for(argv: list[str]) -> list[str]:
    """Envoy's `argv` as started when Envoy is our own child: dying with us, and with the file
    descriptor limit raised to `fd_limit`. (Under `kubelb.envoy.shim`, the shim raises it.) A
    socket per listener per worker: the usual soft limit (1024) is far too low. (Envoy 1.40
    raises it itself as well; an older or custom build may not.)"""
    return children.command(argv, fd_limit=fd_limit())


def hint(log_tail: tuple[str, ...]) -> str:
    """The reason an Envoy's last lines give for its exit, briefly."""
    for line in reversed(log_tail):
        if "Too many open files" in line:
            return "Too many open files"
    for line in reversed(log_tail):
        match = LOG_LINE.match(line)
        if match and match[1] in ("critical", "error"):
            return match[3][:200]
    return ""


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot): with the pid, it
    names one process, even after the pid is reused. None when it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])
