"""Our ADS server programming a real Envoy, with traffic to real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from kubelb.envoy import supervisor
from kubelb.ir import proxy
from kubelb.observe import metrics
from kubelb.xds import cache, callbacks, server, snapshot, sotw, translate
from tests.integration.xds import backends
from tests.integration.xds.conftest import (
    NODE,
    Xds,
    answers,
    both_flavours,
    config,
    envoy_spec,
    tcp_lb,
    udp_lb,
)
from tests.unit.xds import protos

pytestmark = pytest.mark.integration


@both_flavours
async def test_tcp_and_udp_traffic(xds: Xds, envoys: supervisor.EnvoySupervisor) -> None:
    tcp_port, udp_port = backends.free_port(), backends.free_port()
    async with backends.TCPEcho("a") as tcp, backends.UDPEcho("u") as udp:
        xds.publish(config(tcp_lb("tcp", tcp_port, tcp.port), udp_lb("udp", udp_port, udp.port)))
        await envoys.ensure(NODE, xds.spec())
        async with asyncio.timeout(30):
            await envoys.wait_ready(NODE)
        await backends.eventually(lambda: answers(tcp_port, "a:"), what="TCP through Envoy")

        async def udp_ok() -> bool:
            return await backends.udp_roundtrip(udp_port, "hi") == "u:hi"

        await backends.eventually(udp_ok, what="UDP through Envoy")
        assert xds.cache.status(NODE).in_sync()


class Recorder(callbacks.Callbacks):
    """Every response sent and request understood, in order, as short strings."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def on_request(self, stream: Any, request: Any, outcome: sotw.Outcome) -> None:
        self.events.append(f"{outcome} {snapshot.SHORT_NAMES.get(request.type_url)}")

    def on_response(self, stream: Any, response: Any) -> None:
        kind = snapshot.SHORT_NAMES[response.type_url]
        # Delta responses wrap each resource and may name removals.
        packed = [getattr(r, "resource", r) for r in response.resources]
        event = f"sent {kind} {','.join(sorted(_name(r) for r in packed)) or 'nothing'}"
        removed = sorted(getattr(response, "removed_resources", ()))
        self.events.append(event + (f" removing {','.join(removed)}" if removed else ""))


def _name(packed: Any) -> str:
    for t, cls in (
        (snapshot.CLUSTER, cluster_pb2.Cluster),
        (snapshot.LISTENER, listener_pb2.Listener),
    ):
        if packed.type_url == t:
            message = cls()
            packed.Unpack(message)
            return str(message.name)
    message = endpoint_pb2.ClusterLoadAssignment()
    packed.Unpack(message)
    return str(message.cluster_name)


async def start(xds: Xds, envoys: supervisor.EnvoySupervisor, node: str = NODE) -> None:
    await envoys.ensure(node, xds.spec())
    async with asyncio.timeout(30):
        await envoys.wait_ready(node)


@both_flavours
async def test_endpoint_change_keeps_connections(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    port = backends.free_port()
    async with backends.TCPEcho("a") as a, backends.TCPEcho("b") as b:
        xds.publish(config(tcp_lb("lb", port, a.port)))
        await start(xds, envoys)
        await backends.eventually(lambda: answers(port, "a:"), what="traffic to a")
        # Counted from here: what matters is that the config change restarts nothing.
        pid, restarts = envoys.pid(NODE), envoys.restarts(NODE)
        client = await backends.TCPClient.connect(port)
        try:
            assert await client.ask("before") == "a:before"
            async with backends.TrafficLoop(port) as loop:
                before = xds.cache.get_snapshot(NODE)
                after = xds.publish(config(tcp_lb("lb", port, b.port)))
                assert before is not None
                changed = [t for t, v in after.versions.items() if before.versions[t] != v]
                assert changed == [snapshot.ENDPOINT], "an endpoint change is an EDS-only push"
                await loop.wait_for_answer("b:")
            assert loop.failures == []
            assert await client.ask("after") == "a:after", "the open connection keeps its backend"
        finally:
            await client.close()
        assert envoys.pid(NODE) == pid, "config changes never restart Envoy"
        assert envoys.restarts(NODE) == restarts


@both_flavours
async def test_removed_endpoint_gets_no_traffic_while_it_still_passes_health_checks(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    """A NotReady node leaves the endpoints while its NodePort still answers: Envoy must drop
    it at once, not keep it until a health check fails (it never would here)."""
    port = backends.free_port()
    async with backends.TCPEcho("a") as a, backends.TCPEcho("b") as b:
        listener, cluster = tcp_lb("lb", port, a.port, b.port)
        checked = dataclasses.replace(cluster, health_check=proxy.HealthCheck())
        xds.publish(config((listener, checked)))
        await start(xds, envoys)
        await backends.eventually(lambda: answers(port, "a:"), what="a served")
        await backends.eventually(lambda: answers(port, "b:"), what="b served")
        xds.publish(
            config((listener, dataclasses.replace(checked, endpoints=checked.endpoints[1:])))
        )
        await backends.eventually(lambda: answers(port, "b:"), what="b still served")

        async def only_b() -> bool:
            return all([await answers(port, "b:") for _ in range(10)])

        await backends.eventually(only_b, what="a removed from the pool")
        served_a = a.connections
        assert all([await answers(port, "b:") for _ in range(10)])
        assert a.connections == served_a


@both_flavours
async def test_a_changed_cluster_finishes_warming(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    """Changing a cluster (here: adding a health check) makes Envoy warm a new instance that
    waits for its endpoints; the server must answer that even though the assignment did not
    change, or the cluster stays warming and later endpoint changes never apply."""
    port = backends.free_port()
    async with backends.TCPEcho("a") as a, backends.TCPEcho("b") as b:
        listener, cluster = tcp_lb("lb", port, a.port)
        xds.publish(config((listener, cluster)))
        await start(xds, envoys)
        await backends.eventually(lambda: answers(port, "a:"), what="traffic to a")
        checked = dataclasses.replace(cluster, health_check=proxy.HealthCheck())
        recorder = Recorder()
        xds.server.hooks += (recorder,)
        xds.publish(config((listener, checked)))

        async def warmed() -> bool:
            code, body = await envoys.admin(
                NODE, "GET", "/config_dump?resource=dynamic_warming_clusters"
            )
            return code == 200 and "lb-cluster" not in body and xds.cache.status(NODE).in_sync()

        await backends.eventually(warmed, what="the changed cluster warmed")
        # Without the unchanged assignment sent again, warming still ends, by Envoy's 15 s
        # initial fetch timeout, and the assignment never goes out.
        assert recorder.events.index("sent clusters lb-cluster") < recorder.events.index(
            "sent endpoints lb-cluster"
        ), recorder.events
        moved = dataclasses.replace(checked, endpoints=tcp_lb("lb", port, b.port)[1].endpoints)
        xds.publish(config((listener, moved)))
        await backends.eventually(lambda: answers(port, "b:"), what="traffic to b")


@both_flavours
async def test_listener_moves_to_a_new_cluster_without_errors(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    """The old cluster is removed only after the listener no longer uses it (make-before-break)."""
    port = backends.free_port()
    async with backends.TCPEcho("a") as a, backends.TCPEcho("b") as b:
        xds.publish(config(tcp_lb("lb", port, a.port)))
        await start(xds, envoys)
        await backends.eventually(lambda: answers(port, "a:"), what="traffic to a")
        listener, cluster = tcp_lb("lb", port, b.port)
        moved = dataclasses.replace(cluster, name="lb-cluster-v2")
        recorder = Recorder()
        xds.server.hooks += (recorder,)
        async with backends.TrafficLoop(port) as loop:
            xds.publish(config((dataclasses.replace(listener, clusters=(moved.name,)), moved)))
            await loop.wait_for_answer("b:")

            async def cleaned_up() -> bool:
                return xds.cache.status(NODE).in_sync()

            await backends.eventually(cleaned_up, what="the old cluster removed")
        assert loop.failures == []
        # What the real Envoy was sent, and when: both clusters first; the listener only after
        # Envoy ACKed them and the new cluster's endpoints; the old cluster removed last.
        # Delta sends only what changed, and removes by name.
        events = recorder.events
        if xds.delta:
            first_cds = events.index("sent clusters lb-cluster-v2")
            new_eds = events.index("sent endpoints lb-cluster-v2")
            last_cds = events.index("sent clusters nothing removing lb-cluster")
        else:
            first_cds = events.index("sent clusters lb-cluster,lb-cluster-v2")
            new_eds = events.index("sent endpoints lb-cluster,lb-cluster-v2")
            last_cds = events.index("sent clusters lb-cluster-v2")
        lds = events.index("sent listeners lb")
        assert first_cds < events.index("ack clusters", first_cds) < lds
        assert new_eds < lds
        assert events.index("ack endpoints", first_cds) < lds
        assert lds < events.index("ack listeners", lds) < last_cds


@both_flavours
async def test_nack_keeps_last_good_config(xds: Xds, envoys: supervisor.EnvoySupervisor) -> None:
    port, bad_port = backends.free_port(), backends.free_port()
    nacks = "kubelb_envoy_control_plane_nacks_total"
    labels = {"snapshot_name": NODE, "type_url": snapshot.LISTENER}
    before = metrics.REGISTRY.get_sample_value(nacks, labels) or 0.0
    async with backends.TCPEcho("a") as a:
        good = xds.publish(config(tcp_lb("lb", port, a.port)))
        await start(xds, envoys)
        await backends.eventually(lambda: answers(port, "a:"), what="traffic to a")

        # tcp_proxy without stat_prefix fails Envoy's validation: the whole LDS update is refused.
        invalid = protos.tcp_listener("broken", bad_port, "lb-cluster")
        invalid.filter_chains[0].filters[0].typed_config.Pack(
            tcp_proxy_pb2.TcpProxy(cluster="lb-cluster")
        )
        bad = snapshot.Snapshot.build(
            clusters=good[snapshot.CLUSTER].items.values(),
            endpoints=good[snapshot.ENDPOINT].items.values(),
            listeners=[*good[snapshot.LISTENER].items.values(), invalid],
        )
        heard: list[str] = []
        xds.cache.watch_rejections(heard.append)
        xds.cache.set_snapshot(NODE, bad)

        async def nacked() -> bool:
            return xds.cache.status(NODE).last_nack is not None

        await backends.eventually(nacked, what="a NACK")
        nack = xds.cache.status(NODE).last_nack
        assert nack is not None
        assert nack.type_url == snapshot.LISTENER
        assert nack.version == bad.version(snapshot.LISTENER)
        assert "StatPrefix" in nack.error_detail
        assert (metrics.REGISTRY.get_sample_value(nacks, labels) or 0.0) == before + 1
        assert await answers(port, "a:"), "the last good listener keeps serving"
        status = xds.cache.status(NODE)
        assert status.streams[0].acked[snapshot.LISTENER] == good.version(snapshot.LISTENER)
        assert xds.cache.rejection(NODE) == nack
        assert heard == [NODE]

        xds.cache.set_snapshot(NODE, good)  # fixing the config is picked up again

        async def in_sync() -> bool:
            return xds.cache.status(NODE).in_sync()

        await backends.eventually(in_sync, what="the good config ACKed")

        # The rejected input is gone: once Envoy ACKs listeners again (the good ones are sent
        # anew, since the bad ones were the last sent) the NACK no longer stands.
        async def cleared() -> bool:
            return xds.cache.status(NODE).last_nack is None

        await backends.eventually(cleared, what="lastNack cleared by the listener ACK")
        assert xds.cache.rejection(NODE) is None
        assert heard == [NODE, NODE]


@both_flavours
async def test_envoy_with_nothing_to_serve_starts_without_fetch_timeouts(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    """An empty snapshot still answers Envoy's initial CDS and LDS fetches; unanswered, Envoy
    starts only after its 15 s initial fetch timeout per type, and counts it."""
    xds.publish(config())
    await start(xds, envoys)
    status, body = await envoys.admin(NODE, "GET", "/stats?filter=init_fetch_timeout")
    assert status == 200
    counters = dict(line.split(": ") for line in body.splitlines() if line)
    assert {
        "cluster_manager.cds.init_fetch_timeout",
        "listener_manager.lds.init_fetch_timeout",
    } <= set(counters)
    assert set(counters.values()) == {"0"}, counters
    port = backends.free_port()
    async with backends.TCPEcho("a") as a:
        xds.publish(config(tcp_lb("lb", port, a.port)))
        await backends.eventually(lambda: answers(port, "a:"), what="traffic once there is an LB")


@both_flavours
async def test_killed_envoy_is_restarted(xds: Xds, envoys: supervisor.EnvoySupervisor) -> None:
    port = backends.free_port()
    async with backends.TCPEcho("a") as a:
        xds.publish(config(tcp_lb("lb", port, a.port)))
        await start(xds, envoys)
        await backends.eventually(lambda: answers(port, "a:"), what="traffic to a")
        pid = envoys.pid(NODE)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

        async def restarted() -> bool:
            new = envoys.pid(NODE)
            return new is not None and new != pid and envoys.ready(NODE)

        await backends.eventually(restarted, what="a restarted, ready Envoy")
        await backends.eventually(lambda: answers(port, "a:"), what="traffic after restart")
        assert envoys.restarts(NODE) == 1


async def test_two_envoys_share_a_node_id(xds: Xds, tmp_path: Path) -> None:
    port = backends.free_port()
    sups = [supervisor.EnvoySupervisor(tmp_path / f"envoy-{i}") for i in range(2)]
    try:
        async with backends.TCPEcho("a") as a:
            xds.publish(config(tcp_lb("lb", port, a.port)))
            for sup in sups:
                await start(xds, sup)

            async def both_in_sync() -> bool:
                status = xds.cache.status(NODE)
                return status.connected == 2 and status.in_sync()

            await backends.eventually(both_in_sync, what="both Envoys ACKing the snapshot")
            for sup in sups:
                code, body = await sup.admin(NODE, "GET", "/listeners")
                assert code == 200
                assert "lb::127.0.0.1:" in body
    finally:
        for sup in sups:
            await sup.close()


@both_flavours
async def test_envoy_reconnects_after_xds_restart(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    port, port2 = backends.free_port(), backends.free_port()
    async with backends.TCPEcho("a") as a:
        xds.publish(config(tcp_lb("lb", port, a.port)))
        await start(xds, envoys)
        await backends.eventually(lambda: answers(port, "a:"), what="traffic to a")
        await xds.server.stop(grace=0.5)
        assert await answers(port, "a:"), "Envoy keeps serving without its control plane"

        # A new server (same address, fresh cache) with a config the Envoy has never seen.
        fresh = cache.SnapshotCache()
        recorder = Recorder()
        restarted = server.XdsServer(fresh, hooks=[recorder])
        await restarted.start(f"127.0.0.1:{xds.port}")
        try:
            fresh.set_snapshot(
                NODE,
                snapshot.Snapshot.from_resources(
                    translate.translate(
                        config(tcp_lb("lb", port, a.port), tcp_lb("lb2", port2, a.port))
                    )
                ),
            )
            await backends.eventually(
                lambda: answers(port2, "a:"), within=60, what="the new listener after reconnect"
            )
            assert fresh.status(NODE).connected == 1
            # Delta: Envoy reported what it holds, so only the new listener was sent.
            expected = "sent listeners lb2" if xds.delta else "sent listeners lb,lb2"
            assert expected in recorder.events, recorder.events
        finally:
            await restarted.stop(grace=0.5)


async def test_max_connection_age_makes_envoy_reconnect(
    envoys: supervisor.EnvoySupervisor,
) -> None:
    """Bounded connection age (so Envoys rebalance across replicas) must not lose config."""
    snapshots = cache.SnapshotCache()
    options = server.ServerOptions(
        max_connection_age_seconds=(1.0, 1.0), max_connection_age_grace_seconds=0.5
    )
    srv = server.XdsServer(snapshots, options=options)
    xds_port = await srv.start("127.0.0.1:0")
    port = backends.free_port()
    try:
        async with backends.TCPEcho("a") as a:
            snapshots.set_snapshot(
                NODE,
                snapshot.Snapshot.from_resources(
                    translate.translate(config(tcp_lb("lb", port, a.port)))
                ),
            )
            await envoys.ensure(NODE, envoy_spec(xds_port))
            await backends.eventually(lambda: answers(port, "a:"), what="traffic to a")
            first = snapshots.status(NODE).streams[0].stream_id

            async def reconnected() -> bool:
                status = snapshots.status(NODE)
                return status.in_sync() and status.streams[0].stream_id != first

            await backends.eventually(reconnected, what="a new, in-sync stream after max age")
            assert await answers(port, "a:")
            assert envoys.restarts(NODE) == 0
    finally:
        await srv.stop(grace=0.5)
