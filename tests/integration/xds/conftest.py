"""Fixtures for xDS integration tests: our ADS server, the Envoy supervisor, IR helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelb.envoy import deployer, supervisor
from kubelb.ir import proxy
from kubelb.util import backoff
from kubelb.xds import cache, server, snapshot, translate
from tests.integration.xds import backends

NODE = "tenant-test"


@dataclass
class Xds:
    cache: cache.SnapshotCache
    server: server.XdsServer
    port: int
    delta: bool = False  # Envoys started with `spec()` use incremental xDS

    def spec(self, **overrides: object) -> deployer.EnvoySpec:
        return envoy_spec(self.port, xds_delta=self.delta, **overrides)

    def publish(self, config: proxy.ProxyConfig) -> snapshot.Snapshot:
        snap = snapshot.Snapshot.from_resources(translate.translate(config))
        self.cache.set_snapshot(config.node_id, snap)
        return snap


@pytest.fixture
async def xds(request: pytest.FixtureRequest) -> AsyncIterator[Xds]:
    """Parametrize indirectly with "sotw" or "delta" to choose the Envoys' ADS flavour."""
    flavour = getattr(request, "param", "sotw")
    snapshots = cache.SnapshotCache()
    srv = server.XdsServer(snapshots)
    port = await srv.start("127.0.0.1:0")
    yield Xds(snapshots, srv, port, delta=flavour == "delta")
    await srv.stop(grace=1.0)


# Run a test once per ADS flavour (state of the world, delta).
both_flavours = pytest.mark.parametrize("xds", ["sotw", "delta"], indirect=True)


@pytest.fixture
async def envoys(tmp_path: Path) -> AsyncIterator[supervisor.EnvoySupervisor]:
    sup = supervisor.EnvoySupervisor(
        tmp_path / "envoy", restart_backoff=backoff.Backoff(initial=0.2, cap=2.0)
    )
    yield sup
    await sup.close()


def envoy_spec(xds_port: int, **overrides: object) -> deployer.EnvoySpec:
    """A light Envoy for tests: one worker, no probe listeners, a short drain."""
    fields: dict[str, object] = {
        "xds_port": xds_port,
        "readiness_port": None,
        "health_port": None,
        "concurrency": 1,
        "drain_seconds": 1.0,
        "stop_timeout_seconds": 5.0,
    }
    fields.update(overrides)
    return deployer.EnvoySpec(**fields)  # type: ignore[arg-type]


def tcp_lb(name: str, port: int, *backend_ports: int) -> tuple[proxy.Listener, proxy.Cluster]:
    cluster = proxy.Cluster(
        name=f"{name}-cluster",
        protocol=proxy.Protocol.TCP,
        endpoints=tuple(proxy.Endpoint(address="127.0.0.1", port=p) for p in backend_ports),
    )
    listener = proxy.Listener(
        name=name,
        address="127.0.0.1",
        port=port,
        protocol=proxy.Protocol.TCP,
        clusters=(cluster.name,),
    )
    return listener, cluster


def udp_lb(name: str, port: int, *backend_ports: int) -> tuple[proxy.Listener, proxy.Cluster]:
    cluster = proxy.Cluster(
        name=f"{name}-cluster",
        protocol=proxy.Protocol.UDP,
        endpoints=tuple(proxy.Endpoint(address="127.0.0.1", port=p) for p in backend_ports),
    )
    listener = proxy.Listener(
        name=name,
        address="127.0.0.1",
        port=port,
        protocol=proxy.Protocol.UDP,
        clusters=(cluster.name,),
    )
    return listener, cluster


def config(*lbs: tuple[proxy.Listener, proxy.Cluster], node: str = NODE) -> proxy.ProxyConfig:
    return proxy.ProxyConfig(
        node_id=node,
        listeners=tuple(li for li, _ in lbs),
        clusters=tuple(c for _, c in lbs),
    )


async def answers(port: int, prefix: str) -> bool:
    return (await backends.tcp_roundtrip(port)).startswith(prefix)
