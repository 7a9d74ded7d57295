"""The host publisher applies nothing before the first complete build is released."""

from __future__ import annotations

import asyncio

from kubelb.ir import proxy
from kubelb.standalone import publisher


async def test_nothing_is_applied_before_release_then_the_merged_build():
    applied: list[proxy.ProxyConfig] = []
    done = asyncio.Event()

    async def apply(config: proxy.ProxyConfig) -> None:
        applied.append(config)
        done.set()

    host = publisher.HostPublisher(apply)
    task = asyncio.create_task(host.run())
    try:
        # A start, before the reconcilers rebuilt anything: an adopted data plane keeps what
        # it serves.
        for _ in range(5):
            await asyncio.sleep(0)
        assert applied == []
        host.publish(proxy.ProxyConfig(node_id="ns-a"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert applied == []
        host.release()
        await asyncio.wait_for(done.wait(), 5)
        assert applied == [publisher.merge([proxy.ProxyConfig(node_id="ns-a")])]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
