"""Routes from files in standalone mode, through the real `kubelb` CLI, on both data planes: an
Ingress embedded in a Route, its Service's nodePort and the endpoints given inline, is served on
port 80 of a pool address; its status document says where; removing the file's Route removes
the listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.manager.helpers import http_backend, http_get
from tests.integration.standalone import harness
from tests.integration.standalone.harness import free_port

pytestmark = pytest.mark.integration

POOL = "127.0.0.58"
NODE = "127.0.0.23"


@pytest.fixture(params=["envoy", "python"])
async def kubelb(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[harness.Standalone]:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    instance = harness.Standalone(
        dataplane=request.param,
        config_dir=config_dir,
        state_dir=tmp_path / "state",
        log_path=tmp_path / "kubelb.log",
        address_pool=POOL,
    )
    yield instance
    code = await instance.stop()
    assert code == 0, f"kubelb exited with {code}:\n{instance.logs()}"


def route_yaml(node_port: int) -> str:
    return f"""\
apiVersion: kubelb.k8c.io/v1alpha1
kind: Route
metadata: {{name: shop, namespace: it}}
spec:
  endpoints:
    - name: nodes
      addresses: [{{ip: {NODE}}}]
  source:
    kubernetes:
      resource:
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {{name: shop, namespace: default}}
        spec:
          rules:
            - host: shop.example.com
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


def _route(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in doc.get("routes", ()) if r["name"] == name), None)


async def test_file_route_serves_an_ingress(kubelb: harness.Standalone) -> None:
    node_port = free_port(NODE)
    (kubelb.config_dir / "route.yaml").write_text(route_yaml(node_port))
    async with http_backend(NODE, node_port, "web"):
        await kubelb.start()

        def applied(doc: dict[str, Any]) -> dict[str, Any] | None:
            route = _route(doc, "shop")
            return route if route is not None and route["applied"] else None

        doc = await kubelb.wait_for(applied, "the Route applied")
        route = applied(doc)
        assert route is not None
        assert route["kind"] == "Ingress"
        assert route["object"] == "default/shop"
        assert route["status"] == {"loadBalancer": {"ingress": [{"ip": POOL}]}}

        answer = None
        for _ in range(600):
            answer = await http_get(POOL, 80, "/item", host_header="shop.example.com")
            if answer is not None and answer[0] == 200:
                break
            await asyncio.sleep(0.1)
        assert answer == (200, "web /item")
        unknown = await http_get(POOL, 80, "/", host_header="nobody.example.com")
        assert unknown is not None
        assert unknown[0] == 404

        (kubelb.config_dir / "route.yaml").unlink()
        await kubelb.wait_for(lambda doc: _route(doc, "shop") is None, "the Route removed")
        for _ in range(600):
            if await http_get(POOL, 80, "/", host_header="shop.example.com") is None:
                break
            await asyncio.sleep(0.1)
        assert await http_get(POOL, 80, "/", host_header="shop.example.com") is None
