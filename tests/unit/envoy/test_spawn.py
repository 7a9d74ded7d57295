"""How an Envoy is started, without a preexec_fn: as kubelb's own child through the exec shim
(`procs.command_for`), or under `kubelb.envoy.shim` when it must outlive kubelb; either way with
its file descriptor limit raised. Real processes (`sh` stands in for Envoy)."""

from __future__ import annotations

import shlex
import subprocess
import sys

from kubelb.envoy import procs, supervisor

LIMIT = ["sh", "-c", "ulimit -Sn; ulimit -Hn"]


def low_soft_limit(command: list[str]) -> str:
    """The output of `command` started with a soft file descriptor limit of 256."""
    line = f"ulimit -Sn 256; exec {shlex.join(command)}"
    return subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout


def test_an_own_envoy_gets_the_fd_limit_and_dies_with_kubelb() -> None:
    command = procs.command_for(LIMIT)
    assert "--die-with" in command  # what it does: tests/unit/util/test_children.py
    out = low_soft_limit(command)
    assert out.split() == [str(procs.fd_limit())] * 2


def test_the_shim_raises_the_fd_limit_for_envoy() -> None:
    """Started with a low soft limit, the shim's Envoy gets the hard one, as an own Envoy does."""
    out = low_soft_limit([sys.executable, "-I", str(supervisor._SHIM), *LIMIT])
    assert out.split() == [str(procs.fd_limit())] * 2
