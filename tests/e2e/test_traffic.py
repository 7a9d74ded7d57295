"""Layer 4 end to end (upstream's L4 e2e list): a tenant Service of type LoadBalancer gets an
address from the management cluster and traffic to it reaches the tenant's NodePorts through
Envoy. Multi-port, multi-node spreading, a NotReady node leaving and rejoining the pool, UDP,
PROXY protocol v2, and source-IP persistence."""

from __future__ import annotations

import collections
import contextlib

import pytest

from kubelb.kube import objects, resources
from tests.e2e import backends
from tests.e2e.conftest import POOL, Stack
from tests.e2e.helpers import (
    answered,
    find,
    ingress_ips,
    lb_service,
    node_ports,
    ready_condition,
    served_address,
    until,
)

pytestmark = pytest.mark.e2e


async def test_basic_path(stack: Stack, mgmt, kube_a, shop):
    """Service -> LB -> port allocation -> management Service -> Envoy listens -> the tenant
    Service's status -> a request reaches the NodePort backend."""
    alpha = stack.tenants["alpha"]
    port = backends.free_port(POOL)
    svc = await kube_a.create(resources.SERVICES,
                              lb_service("web", [{"name": "http", "port": port}]),
                              namespace=shop)  # fmt: skip
    (node_port,) = node_ports(svc).values()
    async with backends.node_backends(alpha.nodes, node_port) as nodes:
        ip = await served_address(kube_a, shop, "web")
        assert ip in POOL
        answer = await answered(ip, port, b"hello")
        assert backends.served_by(answer) in nodes
        assert answer.endswith(b":hello")

    async def lb_ready() -> objects.RawObject | None:
        lb = await find(mgmt, resources.LOAD_BALANCERS, objects.uid(svc), alpha.namespace)
        condition = ready_condition(lb)
        return lb if condition and condition["status"] == "True" else None

    lb: objects.RawObject = await until(lb_ready, what="the LoadBalancer Ready")
    assert lb["metadata"]["labels"]["kubelb.k8c.io/origin-name"] == "web"
    assert lb["metadata"]["labels"]["kubelb.k8c.io/origin-ns"] == shop
    assert (ready_condition(lb) or {}).get("reason") == "Reconciled"
    assert ingress_ips(lb) == [ip]
    (status_port,) = lb["status"]["service"]["ports"]
    assert (status_port["name"], status_port["port"]) == ("http", port)
    assert status_port["upstreamTargetPort"] == node_port
    management_svc = await find(mgmt, resources.SERVICES, f"envoy-{objects.uid(svc)}",
                                alpha.namespace)  # fmt: skip
    assert management_svc is not None
    assert ingress_ips(management_svc) == [ip]
    assert management_svc["spec"]["ports"][0]["targetPort"] == status_port["targetPort"]


async def test_multi_port(stack: Stack, kube_a, shop):
    """Each Service port gets its own listener and reaches its own NodePort (paired by name)."""
    alpha = stack.tenants["alpha"]
    http, admin = backends.free_port(POOL), backends.free_port(POOL)
    ports = [{"name": "http", "port": http}, {"name": "admin", "port": admin}]
    svc = await kube_a.create(resources.SERVICES, lb_service("multi", ports), namespace=shop)
    by_name = node_ports(svc)
    async with contextlib.AsyncExitStack() as stack_:
        for name, node_port in by_name.items():
            await stack_.enter_async_context(
                backends.node_backends(alpha.nodes, node_port, label=f"{name}/")
            )
        ip = await served_address(kube_a, shop, "multi")
        for name, port in (("http", http), ("admin", admin)):
            answer = await answered(ip, port, name.encode())
            tag = backends.served_by(answer)
            assert tag is not None
            assert tag.split("/")[0] == name, answer


async def test_multi_node_spread_and_not_ready_node(stack: Stack, mgmt, kube_a, shop):
    """Connections spread over every Ready node; a node turning NotReady leaves the pool (its
    NodePort still answers, so only the pool can keep traffic away) and comes back when Ready."""
    alpha = stack.tenants["alpha"]
    port = backends.free_port(POOL)
    svc = await kube_a.create(resources.SERVICES, lb_service("spread", [{"name": "tcp",
                              "port": port}]), namespace=shop)  # fmt: skip
    (node_port,) = node_ports(svc).values()
    leaving = "node-a3"
    async with backends.node_backends(alpha.nodes, node_port) as nodes:
        ip = await served_address(kube_a, shop, "spread")
        await _until_served_by(ip, port, set(nodes), what="traffic on every node")

        await alpha.cluster.set_node_ready(leaving, False)
        try:
            await _until_addresses(mgmt, alpha.namespace, sorted(
                a for n, a in alpha.nodes.items() if n != leaving))  # fmt: skip
            await _until_avoided(ip, port, leaving)
            before = nodes[leaving].answered
            seen: collections.Counter[str | None] = collections.Counter()
            for i in range(20):
                seen[backends.served_by(await backends.exchange(ip, port, b"%d" % i))] += 1
            assert seen[leaving] == 0
            assert nodes[leaving].answered == before
            assert sum(seen.values()) == 20, seen  # the others answered every time
            assert len(seen) == len(nodes) - 1, seen
        finally:
            await alpha.cluster.set_node_ready(leaving, True)
        await _until_addresses(mgmt, alpha.namespace, sorted(alpha.nodes.values()))
        await _until_served_by(ip, port, {leaving}, what=f"traffic on {leaving} again")


async def _until_served_by(ip: str, port: int, wanted: set[str], *, what: str) -> None:
    seen: set[str] = set()

    async def check() -> bool:
        tag = backends.served_by(await backends.exchange(ip, port, b"x"))
        if tag:
            seen.add(tag)
        return wanted <= seen

    await until(check, what=what)


async def _until_avoided(ip: str, port: int, node: str, streak: int = 10) -> None:
    """Until `streak` answers in a row came from other nodes."""
    recent: list[str | None] = []

    async def check() -> list[str | None] | None:
        recent.append(backends.served_by(await backends.exchange(ip, port, b"x")))
        del recent[:-streak]
        done = len(recent) == streak and all(t and t != node for t in recent)
        return None if done else list(recent)

    async def avoided() -> bool:
        return await check() is None

    try:
        await until(avoided, what=f"traffic no longer reaching {node}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answers from {recent}") from None


async def _until_addresses(mgmt, namespace: str, ips: list[str]) -> None:
    async def check() -> bool:
        found = await find(mgmt, resources.ADDRESSES, "default", namespace) or {}
        return [a["ip"] for a in found.get("spec", {}).get("addresses") or ()] == ips

    await until(check, what=f"Addresses {ips}")


async def test_udp_and_tcp_on_one_port(stack: Stack, kube_a, shop):
    """A mixed-protocol Service: UDP datagrams and TCP connections to the same port number each
    reach the NodePort of their own protocol."""
    alpha = stack.tenants["alpha"]
    port = backends.free_port(POOL, udp_too=True)
    ports = [{"name": "dns-udp", "port": port, "protocol": "UDP"},
             {"name": "dns-tcp", "port": port, "protocol": "TCP"}]  # fmt: skip
    svc = await kube_a.create(resources.SERVICES, lb_service("dns", ports), namespace=shop)
    by_name = node_ports(svc)
    async with (
        backends.node_backends(alpha.nodes, by_name["dns-udp"], udp=True, label="udp/"),
        backends.node_backends(alpha.nodes, by_name["dns-tcp"], label="tcp/"),
    ):
        ip = await served_address(kube_a, shop, "dns")

        async def datagram() -> bytes | None:
            return await backends.udp_exchange(ip, port, b"query")

        answer = await until(datagram, what="a UDP answer")
        assert answer.split(b"/")[0] == b"udp", answer
        assert answer.endswith(b":query")
        answer = await answered(ip, port, b"query")
        assert answer.split(b"/")[0] == b"tcp", answer
        assert answer.endswith(b":query")


async def test_proxy_protocol_v2(stack: Stack, kube_a, shop):
    """The annotation on the tenant Service makes Envoy send a PROXY v2 header to the NodePort,
    naming the real client address and port."""
    alpha = stack.tenants["alpha"]
    port = backends.free_port(POOL)
    body = lb_service("pp", [{"name": "tcp", "port": port}],
                      annotations={"kubelb.k8c.io/proxy-protocol": "v2"})  # fmt: skip
    svc = await kube_a.create(resources.SERVICES, body, namespace=shop)
    (node_port,) = node_ports(svc).values()
    client_ip = "127.0.0.91"
    async with backends.node_backends(alpha.nodes, node_port, proxy=True) as nodes:
        ip = await served_address(kube_a, shop, "pp")

        async def through() -> tuple[tuple[str, int], bytes] | None:
            try:
                conn = await backends.Connection.open(ip, port, source=client_ip)
            except OSError:
                return None
            try:
                answer = await conn.roundtrip(b"who am i")
                return (conn.local, answer) if answer else None
            finally:
                await conn.close()

        local, answer = await until(through, what="an answer through the PROXY v2 listener")
        tag = backends.served_by(answer)
        assert tag in nodes
        assert local in nodes[tag].proxy_sources
        assert all(b.bad_headers == [] for b in nodes.values())


async def test_source_ip_persistence(stack: Stack, kube_a, shop):
    """sessionAffinity ClientIP: every connection from one client address lands on one node."""
    alpha = stack.tenants["alpha"]
    port = backends.free_port(POOL)
    body = lb_service("sticky", [{"name": "tcp", "port": port}], sessionAffinity="ClientIP")
    svc = await kube_a.create(resources.SERVICES, body, namespace=shop)
    (node_port,) = node_ports(svc).values()
    sources = [f"127.0.0.{n}" for n in range(91, 97)]
    async with backends.node_backends(alpha.nodes, node_port) as nodes:
        ip = await served_address(kube_a, shop, "sticky")
        await answered(ip, port, b"x")

        async def health_checked() -> bool:  # every node in the pool before hashing on it
            return all(b.connections > 0 for b in nodes.values())

        await until(health_checked, what="Envoy health-checking every node")
        landed: dict[str, set[str | None]] = {}
        for source in sources:
            landed[source] = {
                backends.served_by(await backends.exchange(ip, port, b"x", source=source))
                for _ in range(8)
            }
        assert all(len(tags) == 1 and None not in tags for tags in landed.values()), landed
        assert len(set().union(*landed.values())) >= 2, landed  # hashed, not all to one node
