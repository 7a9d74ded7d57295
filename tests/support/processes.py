"""Processes in tests: whether one is still alive, an Envoy that can be kept from starting, with
`kubelb.localcluster.processes`'s child process handles and free ports, so tests need one module."""

from __future__ import annotations

from pathlib import Path

from kubelb.envoy import binary
from kubelb.localcluster.processes import Process, ProcessExitedError, free_port, listens_on

__all__ = ["Process", "ProcessExitedError", "free_port", "held_envoy", "listens_on", "pid_alive"]


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


def held_envoy(folder: Path, refusal: str | None = None) -> tuple[Path, Path]:
    """(an Envoy binary, its hold marker): while the marker file exists the binary exits 1 at
    once (saying `refusal` on stderr, if given) instead of starting the real Envoy."""
    marker = folder / "hold"
    wrapper = folder / "envoy-held"
    say = f"echo '{refusal}' >&2; " if refusal else ""
    wrapper.write_text(f"#!/bin/sh\nif [ -e '{marker}' ]; then {say}exit 1; fi\n"
                       f'exec {binary.find_envoy()} "$@"\n')  # fmt: skip
    wrapper.chmod(0o755)
    return wrapper, marker
