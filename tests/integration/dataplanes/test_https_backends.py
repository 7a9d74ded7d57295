"""HTTPS backends (upstream's `ingress/https-backend` scenario, the proxy's half) on both data
planes: clusters with upstream TLS reach a real HTTPS server whose certificate a CA made here
signed. Verify succeeds with that CA and the certificate's name as SNI, fails with another CA or
a name the certificate lacks; insecure accepts any certificate; plain text to the HTTPS server
fails. A failure is an answer of the plane's own (Envoy 503, Python 502), never a hang."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelb.api import route as api_route
from kubelb.ir import proxy
from kubelb.irbuild import backendtls, loadbalancers as irbuild, routes as irroutes
from kubelb.pki import ca
from tests.integration.dataplane import backends, irs, l7
from tests.integration.dataplanes.conftest import Plane

pytestmark = pytest.mark.integration

NAME = "web.shop.svc"
# A TLS handshake that fails answers like a refused connection.
FAILED = {"envoy": 503, "envoy-delta": 503, "python": 502}


@pytest.fixture
async def https(tmp_path: Path) -> AsyncIterator[tuple[backends.HTTPBackend, ca.Authority]]:
    """An HTTPS server whose certificate (for NAME) the returned CA signed."""
    authority = ca.Authority.create("kubelb test backend CA")
    leaf = authority.issue_server([NAME])
    (tmp_path / "tls.crt").write_bytes(leaf.cert)
    (tmp_path / "tls.key").write_bytes(leaf.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = await backends.HTTPBackend("tls", tls=context).start()
    yield server, authority
    await server.stop()


def config(
    server: backends.HTTPBackend, clusters: dict[str, proxy.UpstreamTLS | None], port: int
) -> proxy.ProxyConfig:
    """One route per cluster (`/<name>`), each cluster the HTTPS server with its TLS setting."""
    base = irs.l7(
        [l7.route(name, path=f"/{name}", backends=irs.to(name)) for name in clusters],
        {name: [server] for name in clusters},
        port=port,
    )
    return proxy.ProxyConfig(
        node_id=base.node_id,
        listeners=base.listeners,
        clusters=tuple(
            proxy.Cluster(
                name=c.name, protocol=c.protocol, endpoints=c.endpoints, tls=clusters[c.name]
            )
            for c in base.clusters
        ),
    )


async def test_verify_insecure_and_failures(plane: Plane, https) -> None:
    server, authority = https
    other = ca.Authority.create("someone else's CA")
    right = authority.cert_pem.decode()
    cfg = config(
        server,
        {
            "verify": proxy.UpstreamTLS(sni=NAME, ca_pem=right),
            "chain": proxy.UpstreamTLS(ca_pem=right),
            "insecure": proxy.UpstreamTLS(verify=False),
            "wrongca": proxy.UpstreamTLS(sni=NAME, ca_pem=other.cert_pem.decode()),
            "wrongname": proxy.UpstreamTLS(sni="other.shop.svc", ca_pem=right),
            "plain": None,
        },
        backends.free_port(),
    )
    assert cfg.validate() == []
    await plane.apply(cfg)
    addr = irs.address(cfg)
    for name in ("verify", "chain", "insecure"):
        status, headers, body = await l7.send(addr, "GET", f"/{name}/x")
        assert (status, headers.get("x-backend")) == (200, "tls"), (name, status, body)
    for name in ("wrongca", "wrongname"):
        status, _, body = await l7.send(addr, "GET", f"/{name}/x")
        assert status == FAILED[plane.kind], (name, status, body)
    status, _, _ = await l7.send(addr, "GET", "/plain/x")
    assert status in (502, 503)
    # Only the verified and insecure requests reached the server's HTTP layer.
    assert sorted(r.target for r in server.requests) == ["/chain/x", "/insecure/x", "/verify/x"]


async def test_a_changed_ca_takes_effect(plane: Plane, https) -> None:
    """Rotation of the CA bundle: the new setting applies to new connections at once."""
    server, authority = https
    other = ca.Authority.create("someone else's CA")
    port = backends.free_port()
    wrong = proxy.UpstreamTLS(sni=NAME, ca_pem=other.cert_pem.decode())
    await plane.apply(config(server, {"web": wrong}, port))
    cfg = config(
        server, {"web": proxy.UpstreamTLS(sni=NAME, ca_pem=authority.cert_pem.decode())}, port
    )
    addr = irs.address(cfg)
    status, _, _ = await l7.send(addr, "GET", "/web/1")
    assert status == FAILED[plane.kind]
    await plane.apply(cfg)
    status, headers, _ = await l7.send(addr, "GET", "/web/2")
    assert (status, headers.get("x-backend")) == (200, "tls")


async def test_grpc_over_tls(plane: Plane) -> None:
    """An HTTP/2 cluster with TLS (the Ingress's GRPCS): h2c from the client, TLS with ALPN h2
    to a real gRPC server that only speaks TLS."""
    authority = ca.Authority.create("kubelb test gRPC CA")
    leaf = authority.issue_server([NAME])
    server = await l7.GRPCBackend("g-tls", tls=(leaf.key, leaf.cert)).start()
    try:
        cfg = irs.l7(
            [l7.route("grpc", backends=irs.to("grpc"))],
            {"grpc": [server]},
            upstream_protocol=proxy.UpstreamProtocol.HTTP2,
            tls=proxy.UpstreamTLS(sni=NAME, ca_pem=authority.cert_pem.decode()),
        )
        await plane.apply(cfg)
        host, port = irs.address(cfg)
        async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
            answer = await channel.unary_unary("/demo.Echo/Unary")(b"hi", timeout=10)
        assert answer == b"g-tls:hi"
    finally:
        await server.stop()


def ingress_route(
    uid: str, name: str, service: dict[str, Any], node_port: int, *, notes: Any = None
) -> api_route.Route:
    """A Route as the agent sends it: an Ingress of class kubelb, its backend Service's NodePort
    copy, the tenant's nodes given inline (here: loopback)."""
    return api_route.Route.model_validate({
        "apiVersion": "kubelb.k8c.io/v1alpha1", "kind": "Route",
        "metadata": {"name": uid, "namespace": "tenant-a"},
        "spec": {
            "endpoints": [{"name": "default", "addresses": [{"ip": "127.0.0.1"}]}],
            "source": {"kubernetes": {
                "resource": {
                    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"name": name, "namespace": "shop",
                                 "annotations": notes or {}},
                    "spec": {"ingressClassName": "kubelb", "rules": [{"http": {"paths": [
                        {"path": f"/{name}", "pathType": "Prefix", "backend": {"service": {
                            "name": service["metadata"]["name"],
                            "port": {"number": 443}}}}]}}]},
                },
                "services": [service | {"apiVersion": "v1", "kind": "Service", "spec": {
                    "type": "NodePort", "ports": [{"port": 443, "nodePort": node_port}]}}],
            }},
        },
    })  # fmt: skip


async def test_ingress_https_backend_from_the_api_objects(plane: Plane, https) -> None:
    """Upstream's `ingress/https-backend`, from the objects users write to the answer: the
    Ingress's backend-protocol HTTPS (insecure), the Service's Verify with its synced CA and SNI,
    and Verify whose CA is not synced (503 from the builder, said on the Route)."""
    server, authority = https
    ca_pem = base64.b64encode(authority.cert_pem).decode()
    synced_ca = {"metadata": {"name": "u-ca", "namespace": "tenant-a", "labels": {
        "kubelb.k8c.io/origin-ns": "shop", "kubelb.k8c.io/origin-name": "web-ca"}},
        "data": {"ca.crt": ca_pem}}  # fmt: skip
    verify = {"kubelb.k8c.io/backend-tls-policy": "Verify", "kubelb.k8c.io/backend-tls-sni": NAME}
    routes = [
        ingress_route("u1", "legacy", {"metadata": {"name": "legacy", "namespace": "shop"}},
                      server.port, notes={"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}),
        ingress_route("u2", "web", {"metadata": {"name": "web", "namespace": "shop", "annotations":
                      {**verify, "kubelb.k8c.io/backend-tls-ca-secret": "web-ca"}}}, server.port),
        ingress_route("u3", "unsynced", {"metadata": {"name": "unsynced", "namespace": "shop",
                      "annotations": {**verify, "kubelb.k8c.io/backend-tls-ca-secret": "gone"}}},
                      server.port),
        ingress_route("u4", "plain", {"metadata": {"name": "plain", "namespace": "shop"}},
                      server.port),
    ]  # fmt: skip
    built = irroutes.build_tenant_routes(
        "tenant-a", routes, {}, address="127.0.0.1", listen_ports={80: backends.free_port()},
        ca_bundles=backendtls.ca_bundles("tenant-a", [synced_ca]),
    )  # fmt: skip
    assert built.outcomes["u3"].problems, "the unsynced CA is told on its Route"
    assert "shop/gone" in built.outcomes["u3"].problems[0]
    assert [o.problems for k, o in sorted(built.outcomes.items()) if k != "u3"] == [()] * 3
    cfg = irbuild.assemble("tenant-a", [built.piece]).config
    await plane.apply(cfg)
    addr = irs.address(cfg)
    for path in ("/legacy/x", "/web/x"):
        status, headers, body = await l7.send(addr, "GET", path)
        assert (status, headers.get("x-backend")) == (200, "tls"), (path, status, body)
    assert (await l7.send(addr, "GET", "/unsynced/x"))[0] == 503
    assert (await l7.send(addr, "GET", "/plain/x"))[0] in (502, 503)
