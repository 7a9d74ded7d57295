"""Fixtures for kubelb.kube against the real API server; fails tests that leave tasks behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kubelb.kube import client

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    yield
    for _ in range(5):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leftovers:
        task.cancel()
    assert not leftovers, f"test left tasks running: {leftovers}"


@pytest.fixture
async def kube(management_api) -> client.Client:
    """A kubelb client (admin) on the management cluster, in the test's event loop."""
    return client.Client(management_api, field_manager="kubelb-test")


@pytest.fixture
def ns(management_namespace: str) -> str:
    return management_namespace
