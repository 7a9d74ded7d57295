"""Child processes that do not outlive us: a `preexec_fn` for `subprocess` and asyncio, and
`popen`, which works from any thread.

Linux only (elsewhere `die_with_parent` returns None and children behave as usual). The signal
is sent when the *thread* that forked exits, not the process: call `die_with_parent` only from a
thread that lives as long as the process (the main thread, the event loop's), and `popen` from
anywhere else (it forks on one long-lived thread of its own).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec function asking the kernel to send `sig` to the child when we die, even by
    SIGKILL, so that nothing is left running without an owner to stop it."""
    if not sys.platform.startswith("linux"):
        return None
    parent_pid = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child must not load

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(argv, **kwargs)` whose child gets SIGTERM when this process dies.

    The fork happens on a dedicated thread that lives until the interpreter exits, so callers
    on short-lived threads (a private event loop, a thread pool) do not take the child down
    when their thread ends."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spawner")
    preexec = die_with_parent()

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(argv), preexec_fn=preexec, **kwargs)

    return _spawner.submit(spawn).result()
