"""HTTPS from files in standalone mode through the real `kubelb` CLI and Envoy: an Ingress'
`tls` entries name Secrets written in the same files (the tenant namespace); each host is served
on 443 with its certificate, a Secret whose key does not match is reported in the status
document while the other host serves, rewriting a Secret's file rotates the certificate, and a
SyncSecret document serves its host as the Secret the manager makes of it."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.manager.helpers import eventually, http_backend
from tests.integration.standalone import harness
from tests.integration.standalone.harness import free_port
from tests.integration.standalone.test_routes import NODE, route_yaml
from tests.support import tlscerts, tlsclient

pytestmark = pytest.mark.integration

POOL = "127.0.0.59"
A, B = "shop.example.com", "b.example.com"
BACKEND = "{service: {name: web, port: {number: 80}}}"


@pytest.fixture
async def kubelb(tmp_path: Path) -> AsyncIterator[harness.Standalone]:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    instance = harness.Standalone(
        dataplane="envoy", config_dir=config_dir, state_dir=tmp_path / "state",
        log_path=tmp_path / "kubelb.log", address_pool=POOL,
    )  # fmt: skip
    yield instance
    code = await instance.stop()
    assert code == 0, f"kubelb exited with {code}:\n{instance.logs()}"


def secret_yaml(
    name: str, issued: tlscerts.Issued, key_pem: str | None = None, *, kind: str = "Secret"
) -> str:
    crt = base64.b64encode(issued.cert_pem.encode()).decode()
    key = base64.b64encode((key_pem or issued.key_pem).encode()).decode()
    api_version = "v1" if kind == "Secret" else "kubelb.k8c.io/v1alpha1"
    return f"""\
apiVersion: {api_version}
kind: {kind}
metadata: {{name: {name}, namespace: it}}
type: kubernetes.io/tls
data: {{tls.crt: {crt}, tls.key: {key}}}
"""


def tls_route_yaml(node_port: int) -> str:
    text = route_yaml(node_port)
    rules = "          rules:\n"
    extra = (f"          tls:\n"
             f"            - {{hosts: [{A}], secretName: shop-tls}}\n"
             f"            - {{hosts: [{B}], secretName: b-tls}}\n"
             f"          rules:\n"
             f"            - host: {B}\n"
             f"              http:\n"
             f"                paths:\n"
             f"                  - path: /\n"
             f"                    pathType: Prefix\n"
             f"                    backend: {BACKEND}\n")  # fmt: skip
    assert rules in text
    return text.replace(rules, extra, 1)


def _route(doc: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in doc.get("routes", ()) if r["name"] == "shop"), None)


async def serial_of(host: str, context: ssl.SSLContext) -> int | None:
    try:
        return await tlsclient.served_serial(443, host, context, address=POOL)
    except (OSError, TimeoutError):
        return None


async def test_file_secrets_serve_ingress_tls(kubelb: harness.Standalone) -> None:
    ca = tlscerts.make_ca()
    a, b, other = ca.issue(A), ca.issue(B), ca.issue("other.example.com")
    context = tlsclient.client_context(ca.cert_pem)
    node_port = free_port(NODE)
    (kubelb.config_dir / "route.yaml").write_text(tls_route_yaml(node_port))
    (kubelb.config_dir / "shop-tls.yaml").write_text(secret_yaml("shop-tls", a))
    (kubelb.config_dir / "b-tls.yaml").write_text(secret_yaml("b-tls", b, other.key_pem))
    async with http_backend(NODE, node_port, "web"):
        await kubelb.start()

        def reported(doc: dict[str, Any]) -> dict[str, Any] | None:
            route = _route(doc)
            told = " ".join(str(c.get("message")) for c in (route or {}).get("conditions", ()))
            return route if "b-tls" in told else None

        route = reported(await kubelb.wait_for(reported, "the bad certificate reported"))
        assert route is not None
        assert not route["applied"]

        async def a_served() -> bool:
            return await serial_of(A, context) == a.serial

        await eventually(a_served, what="shop.example.com over HTTPS")

        async def answered() -> bool:
            conn = await tlsclient.HTTPSConnection.open(443, A, context, address=POOL)
            try:
                return await conn.get("/item", A) == (200, "web /item")
            finally:
                await conn.close()

        # The backend is up once its health check passes.
        await eventually(answered, what="the backend's answer over HTTPS")
        assert await serial_of(B, context) is None

        rotated = ca.issue(A)
        (kubelb.config_dir / "shop-tls.yaml").write_text(secret_yaml("shop-tls", rotated))

        async def rotated_served() -> bool:
            return await serial_of(A, context) == rotated.serial

        await eventually(rotated_served, what="the rotated certificate from the file")

        # The bad Secret replaced by a SyncSecret with the right key: its host is served.
        (kubelb.config_dir / "b-tls.yaml").write_text(secret_yaml("b-tls", b, kind="SyncSecret"))

        async def b_served() -> bool:
            return await serial_of(B, context) == b.serial

        await eventually(b_served, what="b.example.com served from a SyncSecret document")
