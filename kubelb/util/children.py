"""Child processes that do not outlive us, started without a `preexec_fn`.

A `preexec_fn` makes subprocess fork() this whole process, threads and all, and run every fork
handler (gRPC's skip theirs, and can stall, while other threads are inside gRPC). Without one,
subprocess uses vfork() and runs no Python code in the child. What the child needs done before
it runs is done by a tiny exec shim instead (`kubelb.util.execshim`): `command` puts it in
front of the child's argv; it asks the kernel to send the child SIGTERM when we die, even by
SIGKILL (PR_SET_PDEATHSIG), and execs the child, which keeps the pid.

Linux only (elsewhere `command` adds no such request). The signal is sent when the *thread*
that started the child exits, not the process: start children with `command` only from a thread
that lives as long as the process (the main thread, the event loop's), and with `popen` from
anywhere else (it starts them on one long-lived thread of its own).
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SHIM = Path(__file__).with_name("execshim.py")


def command(
    argv: Sequence[str],
    *,
    die_with_parent: bool = True,
    sig: signal.Signals = signal.SIGTERM,
    fd_limit: int | None = None,
) -> list[str]:
    """`argv` behind the exec shim: when `die_with_parent`, the child gets `sig` when we die;
    with `fd_limit`, its RLIMIT_NOFILE (soft and hard) is that. `argv` itself when there is
    nothing to do."""
    options: list[str] = []
    if die_with_parent and sys.platform.startswith("linux"):
        options += ["--die-with", f"{os.getpid()}:{int(sig)}"]
    if fd_limit is not None:
        options += ["--nofile", str(fd_limit)]
    if not options:
        return list(argv)
    _check_runnable(argv[0])
    return [sys.executable, "-I", "-S", str(SHIM), *options, "--", *argv]


def _check_runnable(program: str) -> None:
    """Raise what subprocess would for a program it cannot run: through the shim, it would
    only show as the child's exit status 127."""
    if shutil.which(program) is not None:
        return
    if os.sep in program and os.path.exists(program):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(argv, **kwargs)` whose child gets SIGTERM when this process dies.

    The child is started on a dedicated thread that lives until the interpreter exits, so
    callers on short-lived threads (a private event loop, a thread pool) do not take the child
    down when their thread ends."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")
    wrapped = command(argv)

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(wrapped, **kwargs)

    return _spawner.submit(spawn).result()
