"""Envoy's parent when Envoy must outlive kubelb: `python shim.py ENVOY ARGS...`.

Envoy asks the kernel to send it SIGTERM when its parent dies (PR_SET_PDEATHSIG, set by Envoy
itself at start-up), so an Envoy that is kubelb's own child dies with kubelb whatever kubelb does.
This shim is that parent instead: it runs Envoy, passes on the signals kubelb sends (SIGTERM,
SIGINT, SIGHUP, SIGUSR1), and exits as Envoy did (the same status, or the same signal). Killed
itself, it takes Envoy along through that same PR_SET_PDEATHSIG. It raises its file descriptor
limit for Envoy first, as `kubelb.envoy.procs` does for an Envoy that is kubelb's own child
(kubelb starts it without a preexec_fn: see `kubelb.util.children`). Standard library only, run
as a file: it must start fast and import nothing of kubelb.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from types import FrameType

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)


def raise_fd_limit() -> None:
    """Soft and hard RLIMIT_NOFILE to our hard one (2**20 when unlimited): `procs.fd_limit`."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def main(argv: list[str]) -> int:
    raise_fd_limit()
    child = subprocess.Popen(argv)

    def forward(sig: int, _frame: FrameType | None) -> None:
        child.send_signal(sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    code = child.wait()
    if code < 0:  # die of the same signal, so our parent sees what Envoy saw
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's cannot be set (nor need be)
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
