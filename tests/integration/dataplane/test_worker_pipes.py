"""Worker processes of the Python data plane: their pipe to the parent never stops draining."""

from __future__ import annotations

import asyncio

import pytest

from kubelb.dataplane import context, processes
from kubelb.ir import proxy
from tests.integration.dataplane import irs
from tests.integration.dataplane.conftest import eventually

pytestmark = pytest.mark.integration


async def test_a_message_over_the_line_limit_is_dropped_and_reading_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A limit the workers' status (a few hundred bytes per listener) exceeds at once.
    monkeypatch.setattr(processes, "_LINE_LIMIT", 1024)
    pool = processes.WorkerPool(1, options=context.Options(), drain_seconds=0.1)
    await pool.start()
    try:
        # The status names each listener: this one's name alone is over the limit.
        await pool.apply(irs.l4(proxy.Protocol.TCP, [], name="l" * 2000))
        reader = pool._workers[0].reader
        assert reader is not None
        # Several status pushes (one a second), each over the limit, then another apply.
        await eventually(lambda: "dropped a message" in caplog.text, what="a dropped message")
        assert not reader.done()
        async with asyncio.timeout(30):
            await pool.apply(proxy.ProxyConfig(node_id="test"))
    finally:
        await pool.close(0.1)
