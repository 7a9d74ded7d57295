"""Fixtures for the built-in data plane's integration tests: uvloop, a DataPlane factory that
always closes, and a guard that fails a test leaving sockets or tasks behind."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import uvloop

from kubelb.dataplane import context, runtime
from kubelb.ir import proxy


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The data plane runs on uvloop in production, so its integration tests do too."""
    return {"uvloop": uvloop.new_event_loop}


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


async def eventually(check: Callable[[], bool], *, seconds: float = 10.0, what: str = "") -> None:
    """Poll `check` until true; fail after a generous deadline (never a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {seconds}s: {what or check}")
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Our process (test backends, data planes, an xDS server) leaves no task or socket open.
    Also used by tests/integration/dataplanes."""
    before = open_sockets()
    yield
    current = asyncio.current_task()
    await eventually(
        lambda: not [t for t in asyncio.all_tasks() if t is not current and not t.done()],
        seconds=10, what="all tasks finished",
    )  # fmt: skip
    await eventually(lambda: open_sockets() <= before, seconds=10, what="sockets closed")


DataPlaneFactory = Callable[..., Coroutine[Any, Any, runtime.DataPlane]]


@pytest.fixture
async def start_dataplane() -> AsyncIterator[DataPlaneFactory]:
    started: list[runtime.DataPlane] = []

    async def start(
        config: proxy.ProxyConfig, *, workers: int = 1, **options: Any
    ) -> runtime.DataPlane:
        dp = runtime.DataPlane(
            workers=workers, options=context.Options(**options), drain_seconds=0.5
        )
        started.append(dp)
        await dp.apply(config)
        return dp

    yield start
    for dp in started:
        await dp.close(0)
