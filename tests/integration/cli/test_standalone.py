"""`kubelb status --admin-address` against a running `kubelb --mode=standalone`: a serving
LoadBalancer, one refused for a port conflict (with its reason), and a Route, per namespace."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubelb import cli
from tests.integration.standalone import harness
from tests.integration.standalone.harness import free_port, lb_yaml

pytestmark = pytest.mark.integration

POOL = "127.0.0.93"  # one address: the second LoadBalancer on the same port cannot be placed


def _ingress_route(namespace: str, node_port: int) -> str:
    return f"""\
apiVersion: kubelb.k8c.io/v1alpha1
kind: Route
metadata: {{name: site, namespace: {namespace}}}
spec:
  endpoints:
    - addresses: [{{ip: 127.0.0.24}}]
  source:
    kubernetes:
      resource:
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {{name: site, namespace: default}}
        spec:
          rules:
            - host: site.example.com
              http:
                paths:
                  - path: /
                    pathType: Prefix
                    backend: {{service: {{name: web, port: {{number: 80}}}}}}
      services:
        - apiVersion: v1
          kind: Service
          metadata: {{name: web, namespace: default}}
          spec:
            type: NodePort
            ports: [{{port: 80, nodePort: {node_port}}}]
"""


@pytest.fixture
async def kubelb(tmp_path: Path) -> AsyncIterator[harness.Standalone]:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    instance = harness.Standalone(
        dataplane="python",
        config_dir=config_dir,
        state_dir=tmp_path / "state",
        log_path=tmp_path / "kubelb.log",
        address_pool=POOL,
    )
    yield instance
    code = await instance.stop()
    assert code == 0, f"kubelb exited with {code}:\n{instance.logs()}"


async def test_status_of_a_standalone_kubelb(capsys, kubelb):
    port = free_port(POOL)
    (kubelb.config_dir / "a.yaml").write_text(
        lb_yaml("a", port, [("127.0.0.21", free_port())], namespace="shop")
    )
    (kubelb.config_dir / "b.yaml").write_text(
        lb_yaml("b", port, [("127.0.0.22", free_port())], namespace="shop")
    )
    (kubelb.config_dir / "route.yaml").write_text(_ingress_route("web", free_port()))
    await kubelb.start()

    def settled(doc: dict[str, Any]) -> bool:
        lbs = {lb["name"]: lb for lb in doc["loadBalancers"]}
        routes = doc.get("routes") or ()
        return (
            {"a", "b"} <= lbs.keys()
            and any(lb["ready"] for lb in lbs.values())
            and any(c["reason"] == "PortConflict" for lb in lbs.values() for c in lb["conditions"])
            and any(r["applied"] for r in routes)
        )

    raw = await kubelb.wait_for(settled, "one LoadBalancer served, one refused, the Route")
    served = next(lb["name"] for lb in raw["loadBalancers"] if lb["ready"])
    refused = "b" if served == "a" else "a"
    address = f"127.0.0.1:{kubelb.admin_port}"

    code = await asyncio.to_thread(cli.main, ["status", "--admin-address", address])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "Data plane: python ready; address pool: 127.0.0.93" in lines
    assert next(line for line in lines if line.startswith("shop ")).split() == [
        "shop",
        "shop",
        "Ready",
        "1/2",
        "ready",
        "0/0",
        "ready",
        "1",
    ]
    assert next(line for line in lines if line.startswith(f"    {served} ")).split() == [
        served,
        "LoadBalancer",
        POOL,
        f"{port}/TCP",
        "True",
        "Reconciled",
    ]
    refused_row = next(line for line in lines if line.startswith(f"    {refused} ")).split()
    assert refused_row[2:] == ["<pending>", f"{port}/TCP", "False", "PortConflict"]
    assert any(
        line.startswith(f"    LoadBalancer {refused}: Ready=False (PortConflict): ")
        for line in lines
    )
    site = next(line for line in lines if line.startswith("    site ")).split()
    assert site == ["site", "Ingress", "default/site", POOL, "True", "InstallationSuccessful"]

    code = await asyncio.to_thread(
        cli.main, ["status", "--admin-address", address, "-n", "web", "-o", "json"]
    )
    document = json.loads(capsys.readouterr().out)
    assert document["source"] == "standalone"
    assert [t["namespace"] for t in document["tenants"]] == ["web"]
    assert document["tenants"][0]["routes"][0]["ready"] is True
    assert document["tenants"][0]["problems"] == []


async def test_status_without_a_standalone_kubelb_says_so(capsys):
    address = f"127.0.0.1:{free_port()}"
    assert await asyncio.to_thread(cli.main, ["status", "--admin-address", address]) == 1
    assert f"cannot read http://{address}/api/loadbalancers" in capsys.readouterr().err
