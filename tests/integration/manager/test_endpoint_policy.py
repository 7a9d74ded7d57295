"""A hostile tenant on the process-mode manager, the real API server and real Envoys: endpoints
naming the hub's own sockets (the manager's metrics, xDS and probe servers, the API server),
in any spelling (IPv4-mapped, 0.0.0.0, a hostname, `127.1`), or a denied range (link-local),
are refused. Traffic through the tenant's LoadBalancer never reaches them, each LoadBalancer's
condition and an Event say why, its other endpoints and the tenant's other LoadBalancers keep
serving, and another tenant's Envoy has no admin port to name at all."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import pytest

from kubelb.infra import process as process_infra
from kubelb.kube import client, objects, resources
from kubelb.manager import lbservice
from tests.integration.manager.helpers import (
    addresses,
    echo_server,
    eventually,
    exchange,
    free_ports,
    get,
    load_balancer,
    ready,
)
from tests.integration.xds.test_supervisor_admin_pipe import listening_tcp_ports

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.42"
NODE_ADDRESS = "127.0.0.22"  # the tenant's honest "node", beside each hostile address
REQUESTS = 8  # per LoadBalancer: Envoy spreads them over both endpoints when both are there
# Bounds a request that hangs on a loaded machine; an answer is what is checked, not its speed.
ANSWER_LIMIT = 15.0


def hostile_lb(name: str, lb_port: int, target: str, port: int) -> dict[str, Any]:
    """LB port `lb_port` -> [`target`, the honest node] x `port`."""
    address = {"ip": target} if target[0].isdigit() or ":" in target else {"hostname": target}
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "p", "port": lb_port, "protocol": "TCP"}],
            "endpoints": [{
                "addresses": [address, {"ip": NODE_ADDRESS}],
                "ports": [{"name": "p", "port": port, "protocol": "TCP"}],
            }],
        },
    }  # fmt: skip


async def refused_condition(kube: client.Client, ns: str, name: str) -> dict[str, Any] | None:
    condition = ready(await get(kube, resources.LOAD_BALANCERS, ns, name))
    return condition if condition and condition["reason"] == "EndpointRefused" else None


async def test_hostile_endpoints_are_refused(kube, tenants, managers, manager_settings):
    alpha, bravo = await tenants(), await tenants()
    settings = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,)}
    api = urlsplit((await kube.connection()).server)
    assert api.hostname == "127.0.0.1"
    assert api.port is not None
    async with managers(manager_settings, **settings) as manager:
        assert isinstance(manager.infra, process_infra.ProcessInfra)

        async def bound() -> bool:
            checks = manager.readiness.checks
            return "xds-serving" in checks and not manager.readiness.failing()

        await eventually(bound, what="the manager's servers bound")
        metrics, xds, probes = manager.metrics.port, manager.xds_port, manager.probes.port
        link_local, web_port, bravo_port = free_ports(NODE_ADDRESS, 3)
        # (name, address, port, why): every way to name a socket of the hub's own we tried.
        targets = [
            ("metrics", "127.0.0.1", metrics, "hub's own sockets"),
            ("xds", "127.0.0.1", xds, "hub's own sockets"),
            ("probes", "127.0.0.1", probes, "hub's own sockets"),
            ("mapped", "::ffff:127.0.0.1", metrics, "hub's own sockets"),
            ("unspecified", "0.0.0.0", metrics, "denied CIDR 0.0.0.0/8"),
            ("hostname", "localhost", metrics, "not an IP address"),
            ("short", "127.1", metrics, "not an IP address"),
            ("apiserver", api.hostname, api.port, "hub's own sockets"),
            ("metadata", "169.254.169.254", link_local, "denied CIDR 169.254.0.0/16"),
        ]
        # One port each: two LoadBalancers on one port would leave one unplaced.
        lb_names = [*(name for name, *_ in targets), "web", "bravo"]
        lb_ports = dict(zip(lb_names, free_ports(POOL_ADDRESS, len(lb_names)), strict=True))

        async with contextlib.AsyncExitStack() as stack:
            # The honest node answers on every port a hostile endpoint names (but the API
            # server's: its port is refused on every local address, the node's included).
            for port in {metrics, xds, probes, link_local, web_port, bravo_port}:
                await stack.enter_async_context(echo_server(NODE_ADDRESS, port, b"node:"))
            for ns in (alpha, bravo):
                await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
            web = load_balancer("web", ports=[("http", lb_ports["web"], web_port)])
            other = load_balancer("other", ports=[("http", lb_ports["bravo"], bravo_port)])
            await kube.create(resources.LOAD_BALANCERS, web, namespace=alpha)
            await kube.create(resources.LOAD_BALANCERS, other, namespace=bravo)
            for name, address, port, _ in targets:
                await kube.create(resources.LOAD_BALANCERS,
                                  hostile_lb(name, lb_ports[name], address, port),
                                  namespace=alpha)  # fmt: skip

            # The tenant's honest LoadBalancer serves, and so does the other tenant's.
            for port in (lb_ports["web"], lb_ports["bravo"]):
                answer = await eventually(partial(exchange, POOL_ADDRESS, port, b"hi"),
                                          what="an honest LoadBalancer serving")  # fmt: skip
                assert answer == b"node:hi"

            refused = 0
            for name, _, port, why in targets:
                condition = await eventually(partial(refused_condition, kube, alpha, name),
                                             what=f"{name}: EndpointRefused")  # fmt: skip
                assert condition["status"] == "False"
                assert why in condition["message"], condition
                refused += 1
                # What Envoy was given: the listener, without the hostile endpoint.
                explain = partial(_placement, kube, manager, alpha, name)
                config = await eventually(partial(_published, manager, alpha, name),
                                          what=f"{name}: listener published",
                                          context=explain)  # fmt: skip
                endpoints = {(e.address, e.port) for c in config for e in c.endpoints}
                expected = set() if name == "apiserver" else {(NODE_ADDRESS, port)}
                assert endpoints == expected, (name, endpoints)
                # Envoy runs it (what was published is not yet bound): its snapshot ACKed, and
                # the honest node answering through it.
                await eventually(partial(_in_sync, manager, alpha), what=f"{name}: Envoy in sync")
                if name != "apiserver":
                    first = await eventually(partial(exchange, POOL_ADDRESS, lb_ports[name],
                                                     b"ping", limit=ANSWER_LIMIT),
                                             what=f"{name}: served")  # fmt: skip
                    assert first == b"node:ping", (name, first)
                # And through the LoadBalancer address, only the honest node ever answers.
                for _ in range(REQUESTS):
                    answer = await exchange(POOL_ADDRESS, lb_ports[name], b"GET /metrics\r\n\r\n",
                                            limit=ANSWER_LIMIT)  # fmt: skip
                    assert answer in (None, b"node:GET /metrics\r\n\r\n"), (name, answer)
                    if name != "apiserver":
                        assert answer is not None, name
            assert refused == len(targets) == 9

            # An Event on the tenant's LoadBalancer says it too.
            async def refusal_events() -> set[str]:
                listed = await kube.list(resources.EVENTS, namespace=alpha)
                return {str(objects.lookup(e, "involvedObject.name")) for e in listed.items
                        if e.get("reason") == "EndpointRefused"}  # fmt: skip

            names = {name for name, *_ in targets}
            await eventually(lambda: _superset(refusal_events(), names),
                             what="an EndpointRefused Event per hostile LoadBalancer")  # fmt: skip

            # Another tenant's Envoy has no admin port a tenant could name: a Unix socket.
            envoys = manager.infra.envoys
            assert envoys.admin_port(bravo) is None
            assert envoys.admin_path(bravo) is not None
            pid = envoys.pid(bravo)
            assert pid is not None
            assert listening_tcp_ports(pid) == {lb_ports["bravo"]}
            # The honest LoadBalancer still serves after all of it.
            answer = await exchange(POOL_ADDRESS, lb_ports["web"], b"end", limit=ANSWER_LIMIT)
            assert answer == b"node:end"


async def _published(manager: Any, ns: str, name: str) -> Any:
    config = manager.snapshots.published.get(ns)
    if config is None:
        return None
    listener = next((li for li in config.listeners if li.owner == f"{ns}/{name}"), None)
    if listener is None:
        return None
    return [c for c in config.clusters if c.name in listener.clusters]


async def _placement(kube: client.Client, manager: Any, ns: str, name: str) -> dict[str, Any]:
    """Why a LoadBalancer may have no listener: its conditions, its Service's address and the
    pool's reason for giving it none."""
    lb = await get(kube, resources.LOAD_BALANCERS, ns, name)
    service = lbservice.service_name(name)
    svc = await get(kube, resources.SERVICES, ns, service)
    return {"conditions": ((lb or {}).get("status") or {}).get("conditions"),
            "service status": (svc or {}).get("status"),
            "pool": manager.infra.address_problem(ns, service)}  # fmt: skip


async def _in_sync(manager: Any, ns: str) -> bool:
    return bool(manager.cache.status(ns).in_sync())


async def _superset(found: Awaitable[set[str]], wanted: set[str]) -> bool:
    return wanted <= await found


async def test_kubernetes_deployer_defaults(
    kube, tenants, managers, manager_settings, management_namespace
):
    """With the kubernetes deployer: loopback, link-local, the Service range the manager reads
    from the cluster's ServiceCIDRs, the Pod range from its flag, Envoy pods' admin port and
    the Config's denied CIDRs are refused; the rest is published."""
    ns = await tenants()
    await kube.create(resources.CONFIGS, {"metadata": {"name": "default"}, "spec": {
        "loadBalancer": {"deniedEndpointCIDRs": ["198.51.100.0/24"],
                         "allowedEndpointCIDRs": ["198.51.100.7/32", "0.0.0.0/0"]}}},
        namespace=management_namespace)  # fmt: skip
    hostile = ["127.0.0.1", "10.96.0.1", "169.254.169.254", "10.244.1.5", "198.51.100.8"]
    honest = ["192.0.2.9", "198.51.100.7"]
    lb = {
        "metadata": {"name": "web"},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "p", "port": 80, "protocol": "TCP"}],
            "endpoints": [
                {"name": "nodes", "addresses": [{"ip": a} for a in (*hostile, *honest)],
                 "ports": [{"name": "p", "port": 30080, "protocol": "TCP"}]},
                {"name": "admin", "addresses": [{"ip": "192.0.2.10"}],
                 "ports": [{"name": "p", "port": 9001, "protocol": "TCP"}]},
            ],
        },
    }  # fmt: skip
    await kube.create(resources.LOAD_BALANCERS, lb, namespace=ns)
    async with managers(manager_settings, pod_cidrs=("10.244.0.0/16",)) as manager:
        condition = await eventually(partial(refused_condition, kube, ns, "web"),
                                     what="EndpointRefused")  # fmt: skip
        message = condition["message"]
        for why in ("127.0.0.1 is in denied CIDR 127.0.0.0/8",
                    "10.96.0.1 is in denied CIDR 10.96.0.0/16",
                    "169.254.169.254 is in denied CIDR 169.254.0.0/16",
                    "10.244.1.5 is in denied CIDR 10.244.0.0/16",
                    "198.51.100.8 is in denied CIDR 198.51.100.0/24",
                    "192.0.2.10:9001 is refused: it is one of the hub's own sockets"):  # fmt: skip
            assert why in message, message
        assert message.count("is refused") == len(hostile) + 1
        clusters = await eventually(partial(_published, manager, ns, "web"),
                                    what="the LoadBalancer published")  # fmt: skip
        endpoints = {(e.address, e.port) for c in clusters for e in c.endpoints}
        assert endpoints == {(a, 30080) for a in honest}
