"""TLS on the Python data plane beyond what both planes share (tests/integration/dataplanes/
test_https.py): stalled handshakes closed after their timeout, a secret that does not load
refusing only its own names, the ALPN offer following the upstream protocol, worker processes,
and key material that reaches the detached data plane over its control socket and never a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelb.app import python_driver
from kubelb.dataplane import tls_keys
from kubelb.ir import proxy, tls
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplane.conftest import DataPlaneFactory, eventually
from tests.integration.dataplanes import tls_traffic
from tests.integration.dataplanes.test_https import A, B, https, passthrough
from tests.support import tlscerts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ca() -> tlscerts.CA:
    return tlscerts.make_ca()


@pytest.fixture
async def web() -> AsyncIterator[list[backends.HTTPBackend]]:
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(2)]
    yield servers
    for s in servers:
        await s.stop()


@pytest.fixture
async def tls_backends(ca: tlscerts.CA) -> AsyncIterator[list[tls_traffic.TLSBackend]]:
    servers = [
        await tls_traffic.TLSBackend("ta", ca.issue(A)).start(),
        await tls_traffic.TLSBackend("tb", ca.issue(B)).start(),
    ]
    yield servers
    for s in servers:
        await s.stop()


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionError):
        return await reader.read() == b""
    return True


async def test_stalled_handshakes_are_closed_after_the_timeout(
    start_dataplane: DataPlaneFactory, web, tls_backends, ca: tlscerts.CA
) -> None:
    terminating, passing = https(web, {(A,): ca.issue(A)}), passthrough(tls_backends, default=False)
    config = dataclasses.replace(
        terminating,
        listeners=(*terminating.listeners, *passing.listeners),
        clusters=(*terminating.clusters, *passing.clusters),
    )
    dp = await start_dataplane(config, tls_handshake_timeout_seconds=0.3)
    stalled = []
    for addr in (irs.address(terminating), irs.address(passing)):
        for first in (b"", b"\x16\x03\x01\x02\x00\x01"):  # nothing, and a cut ClientHello
            reader, writer = await asyncio.open_connection(*addr)
            writer.write(first)
            stalled.append((reader, writer))
    try:
        async with asyncio.timeout(10):
            closed = [await _closed_by_peer(reader) for reader, _ in stalled]
        assert closed == [True] * len(stalled)
    finally:
        for _, writer in stalled:
            writer.close()
    await eventually(lambda: dp.status()["connections"] == 0, what="no connection left")


async def test_a_secret_that_does_not_load_refuses_only_its_names(
    start_dataplane: DataPlaneFactory, web, ca: tlscerts.CA
) -> None:
    good, bad = ca.issue(A), ca.issue(B)
    config = https(web, {(A,): good, (B,): bad})
    # B's key is not the key of B's certificate.
    broken = tls.TLSSecret(
        name=config.secrets[1].name, certificate_chain=bad.cert_pem, private_key=good.key_pem
    )
    dp = await start_dataplane(dataclasses.replace(config, secrets=(config.secrets[0], broken)))
    addr = irs.address(config)
    client = tls_traffic.client_context(ca)
    assert await tls_traffic.refused(addr, "x.b.example.test", client)
    status, _, serial = await tls_traffic.https_get(addr, A, client)
    assert (status, serial) == (200, good.serial)
    errors = dp.status()["tls_secret_errors"]
    assert list(errors) == [broken.name]
    assert "cannot load" in errors[broken.name]
    # Fixed: the names serve again, without touching the listener.
    await dp.apply(config)
    status, _, serial = await tls_traffic.https_get(addr, "x.b.example.test", client)
    assert (status, serial) == (200, bad.serial)
    assert dp.status()["tls_secret_errors"] == {}


async def test_alpn_offers_h2_only_when_every_upstream_speaks_it(
    start_dataplane: DataPlaneFactory, web, ca: tlscerts.CA
) -> None:
    config = https(web, {(A,): ca.issue(A, "x.b.example.test")})
    dp = await start_dataplane(config)
    addr = irs.address(config)
    both = tls_traffic.client_context(ca, alpn=("h2", "http/1.1"))
    conn = await tls_traffic.Connection.open(addr, A, both)
    await conn.close()
    assert conn.alpn == "http/1.1"
    h2 = dataclasses.replace(
        config,
        clusters=tuple(
            dataclasses.replace(c, upstream_protocol=proxy.UpstreamProtocol.HTTP2)
            for c in config.clusters
        ),
    )
    await dp.apply(h2)
    conn = await tls_traffic.Connection.open(addr, A, both)
    await conn.close()
    assert conn.alpn == "h2"
    assert tls_keys.ALPN_H2[0] == "h2"


async def test_worker_processes_terminate_tls(
    start_dataplane: DataPlaneFactory, web, ca: tlscerts.CA
) -> None:
    cert = ca.issue(A)
    config = https(web, {(A,): cert})
    await start_dataplane(config, workers=2)
    addr = irs.address(config)
    client = tls_traffic.client_context(ca)
    for _ in range(4):
        status, headers, serial = await tls_traffic.https_get(addr, A, client)
        assert (status, headers.get("x-backend"), serial) == (200, "h0", cert.serial)


async def test_key_material_reaches_the_daemon_over_its_socket_only(
    web, ca: tlscerts.CA, tmp_path: Path
) -> None:
    cert = ca.issue(A)
    config = https(web, {(A,): cert})
    driver = python_driver.PythonDriver(work_dir=tmp_path / "dp", drain_seconds=0)
    try:
        await driver.start()
        await driver.apply(config)
        addr = irs.address(config)
        client = tls_traffic.client_context(ca)
        status, _, serial = await tls_traffic.https_get(addr, A, client)
        assert (status, serial) == (200, cert.serial)
    finally:
        await driver.close()
    # The data plane's state folder (record, socket, log FIFO) holds no key material.
    assert _files_holding(tmp_path, cert.key_pem.splitlines()[1].encode()) == []
    assert (tmp_path / "dp").is_dir()


def _files_holding(folder: Path, data: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and data in p.read_bytes()]


async def test_a_listener_turning_tls_on_and_off_in_place(
    start_dataplane: DataPlaneFactory, web, ca: tlscerts.CA
) -> None:
    """TLS is set when the socket is bound: the same address and port, now with TLS, is bound
    again and speaks TLS, and plain HTTP again after."""
    secure = https(web, {(A,): ca.issue(A)})
    plain = dataclasses.replace(
        secure,
        listeners=(dataclasses.replace(secure.listeners[0], tls=None),),
        secrets=(),
    )
    addr = irs.address(secure)
    dp = await start_dataplane(plain)
    status, headers, _ = await scenarios.http_request(addr, scenarios.get("/", A))
    assert (status, headers.get("x-backend")) == (200, "h0")
    await dp.apply(secure)
    status, headers, _ = await tls_traffic.https_get(addr, A, tls_traffic.client_context(ca))
    assert (status, headers.get("x-backend")) == (200, "h0")
    await dp.apply(plain)
    status, headers, _ = await scenarios.http_request(addr, scenarios.get("/", A))
    assert (status, headers.get("x-backend")) == (200, "h0")
    assert web[0].requests[-1].headers["x-forwarded-proto"] == "http"
