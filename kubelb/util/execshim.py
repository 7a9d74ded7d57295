"""Prepares a child, then becomes it: `python -I -S execshim.py [OPTION VALUE]... -- ARGV...`.

What a `preexec_fn` did, without one (see `kubelb.util.children`): the shim runs in the child
process subprocess started, sets it up and execs ARGV, which keeps the pid.

    --die-with PARENT:SIGNAL  ask the kernel to send SIGNAL when the thread that started us
                              exits (PR_SET_PDEATHSIG, kept across execve); exit 1 at once,
                              without running ARGV, when our parent is no longer PARENT (it died
                              before the request took effect). Linux only.
    --nofile N                RLIMIT_NOFILE, soft and hard, to N (best effort).

The signals Python itself ignores at start-up (SIGPIPE, SIGXFSZ) are set back to their default
first, as subprocess sets them for the children it starts. Standard library only, run as a
file: it must start fast and import nothing of kubelb. Exits 127 when ARGV cannot be run, 2 on
a usage error.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    try:
        end = argv.index("--")
    except ValueError:
        return _fail("usage: execshim.py [OPTION VALUE]... -- ARGV...", 2)
    options, command = argv[:end], argv[end + 1 :]
    if not command or len(options) % 2:
        return _fail("usage: execshim.py [OPTION VALUE]... -- ARGV...", 2)
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    for flag, value in zip(options[::2], options[1::2], strict=True):
        if flag == "--die-with":
            parent, sig = (int(part) for part in value.split(":"))
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
                return _fail(f"prctl(PR_SET_PDEATHSIG): {os.strerror(ctypes.get_errno())}", 127)
            if os.getppid() != parent:
                return 1
        elif flag == "--nofile":
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (int(value), int(value)))
        else:
            return _fail(f"unknown option {flag}", 2)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        return _fail(f"{command[0]}: {exc.strerror}", 127)
    raise AssertionError("unreachable")


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"execshim: {message}\n")
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
