"""A cancellation is never lost. On Python 3.11 `asyncio.wait_for` returns the inner result when
the inner awaitable completes in the same loop turn as the cancel (fixed in 3.12): the task
carries on as if never cancelled, and whoever awaits its end (a TaskGroup at shutdown) waits for
ever. That hung a manager's shutdown twice in CI (its address pool's resync wait swallowed the
cancel as a Service change set the event). kubelb waits with `asyncio.timeout` instead."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import kubelb

WAIT_FOR = re.compile(r"\bwait_for\(")
PACKAGE = Path(kubelb.__file__).parent


async def _outcome(wait: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> str:
    event = asyncio.Event()
    task = asyncio.create_task(wait(event))
    for _ in range(3):
        await asyncio.sleep(0)  # the task is waiting on the event now
    event.set()
    task.cancel()  # in the same loop turn as the event
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "carried on"


async def _with_timeout(event: asyncio.Event) -> None:
    async with asyncio.timeout(100):
        await event.wait()


async def _with_wait_for(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), 100)


async def test_asyncio_timeout_keeps_a_cancel_that_meets_the_event() -> None:
    assert await _outcome(_with_timeout) == "cancelled"


async def test_wait_for_loses_that_cancel_before_python_3_12() -> None:
    # Why the rule below exists (and the check that `_outcome` sets the race up).
    expected = "carried on" if sys.version_info < (3, 12) else "cancelled"
    assert await _outcome(_with_wait_for) == expected


def test_kubelb_never_uses_wait_for() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if WAIT_FOR.search(line) and not line.lstrip().startswith("#")
    ]
    assert not found, (
        "asyncio.wait_for loses a cancellation on Python 3.11 (see this module): use "
        "`async with asyncio.timeout(...)`\n" + "\n".join(found)
    )
