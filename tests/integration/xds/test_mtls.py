"""xDS over mTLS: a real Envoy takes its configuration with a certificate naming its node, and no
one else gets any: not a client without a certificate, not one of another CA, not one with tenant
A's certificate asking for tenant B. Rotation: a new certificate reaches Envoy before the old one
expires, and Envoy reconnects with it."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from kubelb.envoy import supervisor
from kubelb.infra import xdscerts
from kubelb.pki import ca, identity, serving
from kubelb.xds import cache, server, snapshot, translate
from tests.integration.xds import backends
from tests.integration.xds.conftest import NODE, answers, config, envoy_spec, tcp_lb
from tests.integration.xds.mtls_client import (
    CLUSTERS,
    ask,
    client_credentials,
    envoy_client_serials,
)

pytestmark = pytest.mark.integration

OTHER = "tenant-other"


@dataclass
class Mtls:
    authority: ca.Authority
    certs: serving.ServerCertificates
    cache: cache.SnapshotCache
    server: server.XdsServer
    port: int

    async def restart(self) -> None:
        """A new server on the same port and cache: every Envoy has to connect again."""
        await self.server.stop(grace=0.5)
        self.server = server.XdsServer(self.cache)
        await self.server.start(f"127.0.0.1:{self.port}", credentials=self.certs.credentials())


@pytest.fixture
async def mtls() -> AsyncIterator[Mtls]:
    authority = ca.Authority.create()
    certs = serving.ServerCertificates(authority, ips=["127.0.0.1"])
    snapshots = cache.SnapshotCache()
    for node in (NODE, OTHER):
        lb = tcp_lb(f"{node}-lb", backends.free_port(), 9)
        snapshots.set_snapshot(
            node, snapshot.Snapshot.from_resources(translate.translate(config(lb, node=node)))
        )
    srv = server.XdsServer(snapshots)
    port = await srv.start("127.0.0.1:0", credentials=certs.credentials())
    state = Mtls(authority, certs, snapshots, srv, port)
    yield state
    await state.server.stop(grace=0.5)


async def test_a_node_certificate_takes_its_own_configuration(mtls: Mtls) -> None:
    leaf = mtls.authority.issue_node(NODE)
    got, code = await ask(mtls.port, NODE, client_credentials(mtls.authority, leaf))
    assert got == [CLUSTERS]
    assert code is None
    assert mtls.server.refused == 0


async def test_tenant_a_certificate_gets_nothing_of_tenant_b(mtls: Mtls) -> None:
    leaf = mtls.authority.issue_node(NODE)
    got, code = await ask(mtls.port, OTHER, client_credentials(mtls.authority, leaf))
    assert got == []
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert mtls.server.refused == 1
    assert mtls.cache.status(OTHER).connected == 0


async def test_server_certificate_is_no_client_certificate(mtls: Mtls) -> None:
    """The server's own certificate (same CA, no node, server usage only) opens no stream."""
    got, code = await ask(mtls.port, NODE, client_credentials(mtls.authority, mtls.certs.leaf))
    assert (got, code) == ([], grpc.StatusCode.UNAVAILABLE)


@pytest.mark.parametrize("client", ["no certificate", "another CA", "plaintext"])
async def test_unauthenticated_clients_get_nothing(mtls: Mtls, client: str) -> None:
    credentials: grpc.ChannelCredentials | None
    if client == "no certificate":
        credentials = client_credentials(mtls.authority, None)
    elif client == "another CA":
        stranger = ca.Authority.create().issue_node(NODE)
        credentials = grpc.ssl_channel_credentials(mtls.authority.cert_pem, stranger.key,
                                                   stranger.cert)  # fmt: skip
    else:
        credentials = None
    got, code = await ask(mtls.port, NODE, credentials)
    assert got == []
    assert code is grpc.StatusCode.UNAVAILABLE  # the handshake fails: no stream at all
    assert mtls.cache.status(NODE).connected == 0


async def test_envoy_takes_its_config_over_mtls_and_rotates(
    mtls: Mtls, envoys: supervisor.EnvoySupervisor, tmp_path: Path
) -> None:
    validity = datetime.timedelta(seconds=8)
    certs = xdscerts.FileCerts(tmp_path / "certs", authority=mtls.authority, validity=validity)
    directory = await certs.ensure(NODE)
    first = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
    port = backends.free_port()
    async with backends.TCPEcho("a") as a, backends.TCPEcho("b") as b:
        mtls.cache.set_snapshot(
            NODE,
            snapshot.Snapshot.from_resources(
                translate.translate(config(tcp_lb("lb", port, a.port)))
            ),
        )
        await envoys.ensure(NODE, envoy_spec(mtls.port, xds_tls_dir=str(directory)))
        async with asyncio.timeout(30):
            await envoys.wait_ready(NODE)
        await backends.eventually(lambda: answers(port, "a:"), what="traffic over mTLS config")
        assert mtls.cache.status(NODE).connected == 1

        rotation = asyncio.create_task(xdscerts.Rotation(certs).run())
        try:

            async def envoy_holds_a_new_certificate() -> bool:
                current = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
                held = await envoy_client_serials(envoys, NODE)
                return current.serial_number != first.serial_number and held == {
                    current.serial_number
                }

            await backends.eventually(envoy_holds_a_new_certificate, within=30,
                                      what="Envoy to load the rotated certificate")  # fmt: skip

            async def first_expired() -> bool:
                return datetime.datetime.now(datetime.UTC) > first.not_valid_after_utc

            await backends.eventually(
                first_expired, within=30, what="the first certificate to expire"
            )
            # Envoy must connect again; its first certificate is no longer accepted.
            await mtls.restart()
            mtls.cache.set_snapshot(
                NODE,
                snapshot.Snapshot.from_resources(
                    translate.translate(config(tcp_lb("lb", port, b.port)))
                ),
            )
            await backends.eventually(lambda: answers(port, "b:"), within=60,
                                      what="the new config after reconnecting")  # fmt: skip
        finally:
            rotation.cancel()
        assert certs.issued >= 2
        assert mtls.server.refused == 0
        assert envoys.restarts(NODE) == 0


def _server_serial(port: int, authority: ca.Authority, client: ca.Leaf, tmp_path: Path) -> int:
    """One TLS handshake with the xDS port: the serial number of the certificate it presents
    (checked against the CA and its URI SAN)."""
    (tmp_path / "ca.crt").write_bytes(authority.cert_pem)
    (tmp_path / "tls.crt").write_bytes(client.cert)
    (tmp_path / "tls.key").write_bytes(client.key)
    context = ssl.create_default_context(cafile=tmp_path / "ca.crt")
    context.check_hostname = False  # Envoy checks the URI SAN, as below
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    assert ca.uris(cert) == [identity.SERVER_URI]
    return cert.serial_number


async def test_server_certificate_is_replaced_before_it_expires(tmp_path: Path) -> None:
    """gRPC asks for the server's certificate at each handshake: a due one is re-issued, so the
    server never presents an expired certificate and needs no restart."""
    authority = ca.Authority.create()
    certs = serving.ServerCertificates(
        authority, ips=["127.0.0.1"], validity=datetime.timedelta(seconds=3)
    )
    srv = server.XdsServer(cache.SnapshotCache())
    port = await srv.start("127.0.0.1:0", credentials=certs.credentials())
    client = authority.issue_node(NODE)
    try:
        first = await asyncio.to_thread(_server_serial, port, authority, client, tmp_path)
        assert first == x509.load_pem_x509_certificate(certs.leaf.cert).serial_number

        async def replaced() -> bool:
            serial = await asyncio.to_thread(_server_serial, port, authority, client, tmp_path)
            return serial != first

        await backends.eventually(replaced, what="a new server certificate")
        assert certs.issued >= 2
    finally:
        await srv.stop(grace=0.5)


async def test_envoy_follows_a_new_ca_without_a_restart(
    mtls: Mtls, envoys: supervisor.EnvoySupervisor, tmp_path: Path
) -> None:
    """The CA reaches Envoy by SDS as well: after the CA is replaced (its Secret deleted, the
    managers restarted), Envoy's re-issued certificate directory is all it needs."""
    root = tmp_path / "certs"
    directory = await xdscerts.FileCerts(root, authority=mtls.authority).ensure(NODE)
    port = backends.free_port()
    async with backends.TCPEcho("a") as a, backends.TCPEcho("b") as b:
        mtls.cache.set_snapshot(
            NODE,
            snapshot.Snapshot.from_resources(
                translate.translate(config(tcp_lb("lb", port, a.port)))
            ),
        )
        await envoys.ensure(NODE, envoy_spec(mtls.port, xds_tls_dir=str(directory)))
        await backends.eventually(lambda: answers(port, "a:"), what="traffic over the first CA")

        replacement = ca.Authority.create()
        assert await xdscerts.FileCerts(root, authority=replacement).ensure(NODE) == directory
        mtls.certs = serving.ServerCertificates(replacement, ips=["127.0.0.1"])
        await mtls.restart()
        mtls.cache.set_snapshot(
            NODE,
            snapshot.Snapshot.from_resources(
                translate.translate(config(tcp_lb("lb", port, b.port)))
            ),
        )
        await backends.eventually(lambda: answers(port, "b:"), within=60,
                                  what="the new config from a server of the new CA")  # fmt: skip
        assert envoys.restarts(NODE) == 0
        assert mtls.server.refused == 0
