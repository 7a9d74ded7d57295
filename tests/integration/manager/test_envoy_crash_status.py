"""After a tenant's Envoy crashes, its LoadBalancers do not say they are served: the manager in
process mode, a real Envoy killed from outside and kept from starting again, on the real API
server. Ready turns False with EnvoyNotReady and why the Envoy restarts, and turns True again,
traffic flowing, once the Envoy is back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from kubelb.infra import process as process_infra
from kubelb.kube import resources
from tests.integration.manager.helpers import (
    addresses,
    echo_server,
    eventually,
    exchange,
    free_port,
    get,
    load_balancer,
    ready,
)
from tests.support.processes import held_envoy

pytestmark = pytest.mark.integration

POOL_ADDRESS = "127.0.0.43"
NODE_ADDRESS = "127.0.0.23"
REFUSAL = "test wrapper: Envoy kept from starting"


async def test_a_crashed_envoy_is_not_reported_served(
    kube, tenants, managers, manager_settings, tmp_path: Path
):
    ns = await tenants()
    node_port, lb_port = free_port(NODE_ADDRESS), free_port(POOL_ADDRESS)
    await kube.create(resources.ADDRESSES, addresses(NODE_ADDRESS), namespace=ns)
    await kube.create(resources.LOAD_BALANCERS,
                      load_balancer("web", ports=[("p", lb_port, node_port)]),
                      namespace=ns)  # fmt: skip
    wrapper, marker = held_envoy(tmp_path, REFUSAL)
    settings = {"envoy_deployer": "process", "address_pool": (POOL_ADDRESS,),
                "envoy_binary": str(wrapper)}  # fmt: skip

    async def condition(status: str):
        found = ready(await get(kube, resources.LOAD_BALANCERS, ns, "web"))
        return found if found and found["status"] == status else None

    async with (
        echo_server(NODE_ADDRESS, node_port, b"node:"),
        managers(manager_settings, **settings) as manager,
    ):
        assert isinstance(manager.infra, process_infra.ProcessInfra)
        await eventually(lambda: condition("True"), what="web Ready")
        answer = await eventually(lambda: exchange(POOL_ADDRESS, lb_port, b"hi"),
                                  what="traffic through Envoy")  # fmt: skip
        assert answer == b"node:hi"

        shim = manager.infra.envoys.pid(ns)
        assert shim is not None
        (envoy,) = _children(shim)
        marker.touch()
        os.kill(envoy, signal.SIGKILL)
        found = await eventually(lambda: condition("False"), what="web not Ready")
        assert found["reason"] == "EnvoyNotReady", found
        assert "Envoy restarting after" in found["message"], found
        assert await exchange(POOL_ADDRESS, lb_port, b"down") is None

        marker.unlink()
        found = await eventually(lambda: condition("True"), what="web Ready again")
        assert found["reason"] == "Reconciled", found
        answer = await eventually(lambda: exchange(POOL_ADDRESS, lb_port, b"back"),
                                  what="traffic through the new Envoy")  # fmt: skip
        assert answer == b"node:back"
        assert manager.infra.envoys.restarts(ns) >= 1


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
