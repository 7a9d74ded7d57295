"""A big apply never stalls what already serves: the event loop gets turns throughout it."""

from __future__ import annotations

import asyncio

import pytest

from kubelb.dataplane import context, runtime, upstreams
from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs

pytestmark = pytest.mark.integration

TCP = proxy.Protocol.TCP


def _grown(base: proxy.ProxyConfig, backend: int, count: int) -> proxy.ProxyConfig:
    port = backends.free_port()
    listeners = [
        proxy.Listener(name=f"lb-{i}", address=f"127.0.{1 + i // 250}.{1 + i % 250}", port=port,
                       protocol=TCP, clusters=(f"lb-{i}-c",))
        for i in range(count)
    ]  # fmt: skip
    clusters = [
        proxy.Cluster(name=f"lb-{i}-c", protocol=TCP,
                      endpoints=(proxy.Endpoint(address="127.0.0.1", port=backend),))
        for i in range(count)
    ]  # fmt: skip
    return proxy.ProxyConfig(
        node_id=base.node_id,
        listeners=(*base.listeners, *listeners),
        clusters=(*base.clusters, *clusters),
    )


async def _greeting(address: tuple[str, int]) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    data = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return data


@pytest.fixture
async def backend():
    server = await backends.TCPBackend("t0").start()
    yield server
    await server.stop()


async def test_a_big_apply_gives_the_loop_turns_throughout(start_dataplane, backend, monkeypatch):
    base = irs.l4(TCP, [backend], name="steady")
    dp = await start_dataplane(base)
    big = _grown(base, backend.port, runtime.APPLY_BATCH * 8)

    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    # The number of loop turns seen when each new cluster and each listener context is set up.
    at_cluster: list[int] = []
    at_listener: list[int] = []
    start_cluster = upstreams.ClusterState.start
    build_context = context.build

    async def recording_start(self: upstreams.ClusterState) -> None:
        at_cluster.append(turns)
        await start_cluster(self)

    def recording_build(*args: object, **kwargs: object) -> context.ListenerContext:
        at_listener.append(turns)
        return build_context(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(upstreams.ClusterState, "start", recording_start)
    monkeypatch.setattr(context, "build", recording_build)
    counter = asyncio.get_running_loop().create_task(count_turns())
    await asyncio.sleep(0)
    try:
        before = turns
        await dp.apply(big)
    finally:
        counter.cancel()
        await asyncio.gather(counter, return_exceptions=True)
    monkeypatch.undo()

    assert at_cluster[0] > before, "the config was checked without giving the loop a turn"
    assert at_cluster[-1] > at_cluster[0], "clusters were all set up in one turn of the loop"
    assert at_listener[-1] > at_listener[0], "listeners were all set up in one turn of the loop"
    # Behaviour is unchanged: every listener, old and new, serves.
    status = dp.status()
    assert len(status["listeners"]) == len(big.listeners)
    assert all(li["bound"] for li in status["listeners"]), status["listeners"][:3]
    for li in (big.listeners[0], big.listeners[1], big.listeners[-1]):
        assert await _greeting((li.address, li.port)) == b"t0\n"
