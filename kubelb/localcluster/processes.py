"""Child processes of the local control plane: start with output to a log file, stop by process
group, never leave one behind.

Inputs: argv, a log path. Outputs: `Process` handles. Each child leads its own process group
(`start_new_session`), so `stop()` reaches anything it spawned too. Handles use `subprocess.Popen`,
not asyncio transports, so that a process outlives the event loop that started it (pytest starts
the session control plane in one loop and its tests run in others).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from kubelb.util import children, ports

logger = logging.getLogger(__name__)

_TCP_LISTEN = "0A"  # state column of /proc/net/tcp


class ProcessExitedError(RuntimeError):
    """A control-plane process exited while it was expected to run."""


class Process:
    """One running child process whose output goes to `log`."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            # An owner killed outright (SIGKILL, OOM) must not leave etcd or an API server
            # running: nothing else would ever stop them. Callers may be on a short-lived
            # thread (a private event loop), which `children.popen` allows for.
            self._popen = children.popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._popen.pid
        logger.debug("started %s (pid %d): %s", name, self.pid, " ".join(argv))

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def check_running(self) -> None:
        """Raise `ProcessExitedError` with the tail of the log if the process has exited."""
        code = self._popen.poll()
        if code is not None:
            raise ProcessExitedError(
                f"{self.name} exited with status {code}; last lines of {self.log}:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds, and reap the process."""
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.to_thread(self._popen.wait, grace)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s (pid %d) ignored SIGTERM for %.0fs; killing", self.name, self.pid, grace
            )
        # Always: the leader is gone, but a straggler in its group may not be.
        self._signal_group(signal.SIGKILL)
        await asyncio.to_thread(self._popen.wait)

    def kill_now(self) -> None:
        """Last-resort synchronous kill (interpreter exit, failed start-up without a loop)."""
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=10)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry if it is taken since)."""
    return ports.free_port()


def listens_on(pid: int, port: int) -> bool:
    """True if process `pid` holds a TCP socket listening on `port` (so a probe that succeeds
    reached this process, not another that took the port first)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        owned = {os.readlink(fd) for fd in fd_dir.iterdir()}
    except OSError:
        return False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            listening = state == _TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port
            if listening and f"socket:[{inode}]" in owned:
                return True
    return False
