"""Small helpers for the kube integration tests: poll a condition, run a task for a block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

DEADLINE = 60.0


async def eventually(check: Callable[[], bool], *, what: str = "condition") -> None:
    """Poll `check` until true; fail naming `what` after a generous deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while loop.time() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run `coro` as a task for the block; cancel it and wait for it afterwards."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def load_balancer(name: str, port: int = 8080) -> dict[str, Any]:
    """A valid LoadBalancer body (a CRD kind with a status subresource)."""
    return {
        "metadata": {"name": name},
        "spec": {
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [
                {
                    "addresses": [{"ip": "10.0.0.1"}],
                    "ports": [{"name": "http", "port": 30080, "protocol": "TCP"}],
                }
            ],
        },
    }
