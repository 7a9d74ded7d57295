"""Run a mode's main coroutine until SIGINT or SIGTERM (or a duration), then stop it cleanly.

Returns the process exit code: 0 after a signal or the duration, 1 when the main coroutine ended
on its own (a crash surfaces here with its traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_until_signal(
    main: Coroutine[Any, Any, None], *, name: str, duration: float | None = None
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(main, name=name)
    waiter = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait(
            {task, waiter}, timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()
            logger.error("%s stopped on its own", name)
            return 1
        logger.info("stopping %s", name)
        return 0
    finally:
        for t in (task, waiter):
            t.cancel()
        for t in (task, waiter):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
