"""The endpoint repro of issue 9, end to end: with the kubeconfig the manager issued to it, tenant
alpha writes a LoadBalancer whose endpoints name the manager's metrics and probe servers and the
management API server beside one of its own nodes. Through alpha's LoadBalancer address only the
node ever answers, and the LoadBalancer's condition and an Event say why."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from kubelb.kube import objects, resources
from tests.e2e import backends
from tests.e2e.conftest import POOL, Stack
from tests.e2e.helpers import answered, find, ingress_ips, until
from tests.e2e.test_tenants import issued_client

pytestmark = pytest.mark.e2e

REQUESTS = 8  # per port: Envoy spreads them over every endpoint it was given


async def test_endpoints_naming_the_hub_are_refused(stack: Stack, mgmt) -> None:
    alpha = stack.tenants["alpha"]
    node_name, node = sorted(alpha.nodes.items())[0]
    api = urlsplit(stack.management.server)
    assert api.hostname is not None
    assert api.port is not None
    targets = {"metrics": stack.manager.metrics_port, "probes": stack.manager.probe_port,
               "apiserver": api.port}  # fmt: skip
    lb_ports = {name: backends.free_port(POOL) for name in targets}
    lb = {
        "metadata": {"name": "hostile"},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": n, "port": lb_ports[n], "protocol": "TCP"} for n in targets],
            "endpoints": [{
                "addresses": [{"ip": api.hostname}, {"ip": node}],
                "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in targets.items()],
            }],
        },
    }  # fmt: skip
    ns = alpha.namespace
    async with issued_client(alpha.kubeconfig) as kube:
        await kube.create(resources.LOAD_BALANCERS, lb, namespace=ns)
    try:
        async with (
            backends.node_backends({node_name: node}, targets["metrics"], label="node/"),
            backends.node_backends({node_name: node}, targets["probes"], label="node/"),
        ):

            async def refused():
                found = await find(mgmt, resources.LOAD_BALANCERS, "hostile", ns)
                for c in objects.lookup(found or {}, "status.conditions") or ():
                    if c.get("type") == "Ready" and c.get("reason") == "EndpointRefused":
                        return c
                return None

            condition = await until(refused, what="Ready=False EndpointRefused")
            assert condition["status"] == "False"
            for port in (targets["metrics"], targets["probes"], targets["apiserver"]):
                assert f"{api.hostname}:{port} is refused" in condition["message"]

            async def placed():
                return ingress_ips(await find(mgmt, resources.LOAD_BALANCERS, "hostile", ns))

            (address,) = await until(placed, what="an address for the hostile LoadBalancer")
            for name in ("metrics", "probes"):
                first = await answered(address, lb_ports[name], b"GET /metrics HTTP/1.0\r\n\r\n")
                assert first.startswith(b"node/"), (name, first)
                for _ in range(REQUESTS):
                    answer = await backends.exchange(address, lb_ports[name], b"x")
                    assert answer is not None, name
                    assert answer.startswith(b"node/"), (name, answer)
            # The API server's port is refused on every local address, the node's too: nothing
            # answers, though the same configuration serves the two ports above.
            for _ in range(REQUESTS):
                answer = await backends.exchange(address, lb_ports["apiserver"], b"x")
                assert answer is None, answer

            async def event():
                listed = await mgmt.list(resources.EVENTS, namespace=ns)
                return [e for e in listed.items if e.get("reason") == "EndpointRefused"
                        and objects.lookup(e, "involvedObject.name") == "hostile"]  # fmt: skip

            await until(event, what="an EndpointRefused Event on the LoadBalancer")
    finally:
        await mgmt.delete(resources.LOAD_BALANCERS, "hostile", namespace=ns)
