"""HTTPS backends (upstream's `ingress/https-backend` scenario, the proxy's half) on both data
planes: clusters with upstream TLS reach a real HTTPS server whose certificate a CA made here
signed. Verify succeeds with that CA and the certificate's name as SNI, fails with another CA or
a name the certificate lacks; insecure accepts any certificate; plain text to the HTTPS server
fails. A failure is an answer of the plane's own (Envoy 503, Python 502), never a hang."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from kubelb.ir import proxy
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
