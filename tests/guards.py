"""Guards every test runs under; tests/conftest.py loads this module as a plugin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pytest_asyncio import is_async_test


@pytest.fixture(autouse=True)
def no_leftover_tasks(request: pytest.FixtureRequest) -> None:
    """Fail an async test that leaves asyncio tasks running, after its fixtures are torn down.
    A sync test has no event loop of the test's to look at."""
    if is_async_test(request.node):
        request.getfixturevalue("leftover_tasks_check")


@pytest.fixture
async def leftover_tasks_check() -> AsyncIterator[None]:
    """The check itself, in the test's event loop; it cancels leftovers so others are unaffected."""
    yield
    for _ in range(5):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leftovers:
        task.cancel()
    assert not leftovers, f"test left tasks running: {leftovers}"
