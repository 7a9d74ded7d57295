"""Processes in tests: whether one is still alive, with `kubelb.localcluster.processes`'s child
process handles and free ports, so tests need one module."""

from __future__ import annotations

from pathlib import Path

from kubelb.localcluster.processes import Process, ProcessExitedError, free_port, listens_on

__all__ = ["Process", "ProcessExitedError", "free_port", "listens_on", "pid_alive"]


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    # Field 3 (after the parenthesised command name, which may contain spaces) is the state.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
