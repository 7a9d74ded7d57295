"""The garbage collector never rescans an applied configuration, yet a replaced one is freed."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from functools import partial

import pytest

from kubelb.dataplane import runtime, upstreams
from kubelb.ir import proxy
from tests.integration.dataplane import backends
from tests.integration.dataplane.conftest import eventually

pytestmark = pytest.mark.integration

TCP = proxy.Protocol.TCP
COUNT = 200


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.fixture
async def backend():
    server = await backends.TCPBackend("t0").start()
    yield server
    await server.stop()


def _config(generation: int, port: int, backend: int) -> proxy.ProxyConfig:
    """`COUNT` listeners and clusters whose names are new in each generation."""
    names = [f"g{generation}-{i}" for i in range(COUNT)]
    return proxy.ProxyConfig(
        node_id="test",
        listeners=tuple(
            proxy.Listener(name=n, address=f"127.0.{1 + i // 250}.{1 + i % 250}", port=port,
                           protocol=TCP, clusters=(f"{n}-c",))
            for i, n in enumerate(names)
        ),
        clusters=tuple(
            proxy.Cluster(name=f"{n}-c", protocol=TCP,
                          endpoints=(proxy.Endpoint(address="127.0.0.1", port=backend),))
            for n in names
        ),
    )  # fmt: skip


async def _greeting(li: proxy.Listener) -> bytes:
    reader, writer = await asyncio.open_connection(li.address, li.port)
    data = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return data


def _freed(ref: weakref.ref[upstreams.ClusterState]) -> bool:
    return ref() is None


def _a_cluster(dp: runtime.DataPlane) -> upstreams.ClusterState:
    return next(iter(dp._clusters.values()))


async def test_an_applied_configuration_is_frozen_and_serves(start_dataplane, backend):
    config = _config(0, backends.free_port(), backend.port)
    dp = await start_dataplane(config)

    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    state = _a_cluster(dp)
    assert not any(o is state for o in gc.get_objects()), "the cluster state is not frozen"
    for li in (config.listeners[0], config.listeners[-1]):
        assert await _greeting(li) == b"t0\n"


async def test_replaced_configurations_are_freed(start_dataplane, backend):
    # Alternate ports: a replacement never waits for the listener it replaces to drain.
    ports = [backends.free_port(), backends.free_port()]
    dp = await start_dataplane(_config(0, ports[0], backend.port))
    frozen: list[int] = []
    for generation in range(1, 6):
        # A cluster and its targets form a cycle: only a collection frees the replaced ones.
        old = weakref.ref(_a_cluster(dp))
        config = _config(generation, ports[generation % 2], backend.port)
        await dp.apply(config)
        await eventually(partial(_freed, old), what=f"generation {generation - 1} freed")
        frozen.append(gc.get_freeze_count())
        assert await _greeting(config.listeners[-1]) == b"t0\n"
    # Without collections, each generation would leave several frozen objects per cluster.
    assert frozen[-1] - frozen[0] < COUNT, frozen
