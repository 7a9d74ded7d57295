"""HTTPS and TLS passthrough on both data planes, with real TLS: a CA made in the test, Python
`ssl` clients verifying the chain and the host name of the SNI they send.

Termination: two hosts with their own certificates (exact and wildcard), requests routed by Host
after the handshake with `x-forwarded-proto: https`; an unknown SNI refused, or served the
default certificate when the listener has one; a certificate rotation under a steady stream of
requests, on kept-alive and new connections, without one failed request. Passthrough: each SNI
reaches its own TLS backend, whose certificate the client sees. Garbage, half handshakes and
stalled ClientHellos on either port never stop other clients from being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator

import pytest

from kubelb.ir import proxy, tls
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplane.conftest import eventually
from tests.integration.dataplanes import tls_traffic
from tests.integration.dataplanes.conftest import Plane
from tests.support import tlscerts

pytestmark = pytest.mark.integration

A, B = "a.example.test", "*.b.example.test"
# Covered by B's wildcard across two labels (Envoy's match); its certificate names it too, so
# the client's host name check passes.
DEEP = "deep.x.b.example.test"


@pytest.fixture(scope="module")
def ca() -> tlscerts.CA:
    return tlscerts.make_ca()


@pytest.fixture
async def web() -> AsyncIterator[list[backends.HTTPBackend]]:
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(2)]
    yield servers
    for s in servers:
        await s.stop()


def secret(name: str, issued: tlscerts.Issued) -> tls.TLSSecret:
    return tls.TLSSecret(name=name, certificate_chain=issued.cert_pem, private_key=issued.key_pem)


def https(
    web: list[backends.HTTPBackend], certs: dict[tuple[str, ...], tlscerts.Issued], *,
    port: int | None = None,
) -> proxy.ProxyConfig:  # fmt: skip
    """`a.example.test` to h0 and `*.b.example.test` to h1 over HTTPS; `certs` by server names
    (an empty tuple: the default certificate)."""
    plain = irs.http([("h0", web[:1], (A,), "/"), ("h1", web[1:], (B,), "/")], port=port)
    names = {names: f"cert-{i}" for i, names in enumerate(certs)}
    listener = dataclasses.replace(
        plain.listeners[0],
        tls=proxy.ListenerTLS(certificates=tuple(
            proxy.ServerCertificate(server_names=n, secret=s) for n, s in names.items()
        )),
    )  # fmt: skip
    return dataclasses.replace(
        plain,
        listeners=(listener,),
        secrets=tuple(secret(names[n], issued) for n, issued in certs.items()),
    )


async def test_two_hosts_two_certificates(plane: Plane, web, ca: tlscerts.CA) -> None:
    cert_a, cert_b = ca.issue(A), ca.issue(B, DEEP)
    config = https(web, {(A,): cert_a, (B,): cert_b})
    await plane.apply(config)
    addr = irs.address(config)
    client = tls_traffic.client_context(ca)
    for host, cert, backend in ((A, cert_a, "h0"), ("x.b.example.test", cert_b, "h1"),
                                (DEEP, cert_b, "h1")):  # fmt: skip
        status, headers, serial = await tls_traffic.https_get(addr, host, client)
        assert (status, headers.get("x-backend"), serial) == (200, backend, cert.serial), host
        assert web[int(backend[1])].requests[-1].headers["x-forwarded-proto"] == "https"
    # SNI chooses the certificate, Host the route: a wildcard host over A's connection.
    conn = await tls_traffic.Connection.open(addr, A, client)
    try:
        status, headers, _ = await conn.get("/", "x.b.example.test")
        assert (status, headers.get("x-backend"), conn.serial) == (200, "h1", cert_a.serial)
    finally:
        await conn.close()


async def test_unknown_server_name(plane: Plane, web, ca: tlscerts.CA) -> None:
    cert_a, fallback = ca.issue(A), ca.issue("default.example.test", "other.example.test")
    config = https(web, {(A,): cert_a})
    await plane.apply(config)
    addr = irs.address(config)
    client = tls_traffic.client_context(ca)
    assert await tls_traffic.refused(addr, "other.example.test", client)
    assert await tls_traffic.refused(addr, None, tls_traffic.client_context(ca))
    status, _, serial = await tls_traffic.https_get(addr, A, client)
    assert (status, serial) == (200, cert_a.serial)
    # With a default certificate, any other name and no name at all get it.
    await plane.apply(https(web, {(A,): cert_a, (): fallback}, port=addr[1]))
    conn = await tls_traffic.Connection.open(addr, "other.example.test", client)
    await conn.close()
    assert conn.serial == fallback.serial
    conn = await tls_traffic.Connection.open(addr, None, tls_traffic.client_context(ca))
    await conn.close()
    assert conn.serial == fallback.serial


async def test_rotation_under_a_steady_stream(plane: Plane, web, ca: tlscerts.CA) -> None:
    old, new = ca.issue(A), ca.issue(A)
    config = https(web, {(A,): old})
    await plane.apply(config)
    addr = irs.address(config)
    client = tls_traffic.client_context(ca)
    failures: list[str] = []
    served: list[tuple[str, int]] = []  # (kind of client, serial) per answer
    rotated = asyncio.Event()
    after_rotation: dict[int, int] = {}  # kept-alive client -> answers after the rotation
    stop = False

    async def kept_alive(index: int) -> None:
        conn = await tls_traffic.Connection.open(addr, A, client)
        try:
            while not stop:
                try:
                    status, _, _ = await conn.get("/", A)
                except (*tls_traffic.REFUSED, TimeoutError) as err:
                    failures.append(f"kept-alive {index}: {err!r}")
                    return
                if status != 200:
                    failures.append(f"kept-alive {index}: status {status}")
                served.append(("kept", conn.serial))
                if rotated.is_set():
                    after_rotation[index] = after_rotation.get(index, 0) + 1
                await asyncio.sleep(0.005)
        finally:
            await conn.close()

    async def new_connections(index: int) -> None:
        while not stop:
            try:
                status, _, serial = await tls_traffic.https_get(addr, A, client)
            except (*tls_traffic.REFUSED, TimeoutError) as err:
                failures.append(f"new-connection {index}: {err!r}")
                continue
            if status != 200:
                failures.append(f"new-connection {index}: status {status}")
            served.append(("new", serial))

    tasks = [asyncio.create_task(kept_alive(i)) for i in range(2)]
    tasks += [asyncio.create_task(new_connections(i)) for i in range(2)]
    try:
        await eventually(lambda: len(served) >= 20, seconds=30, what="traffic before rotating")
        await plane.apply(https(web, {(A,): new}, port=addr[1]))
        rotated.set()
        await eventually(
            lambda: ("new", new.serial) in served, seconds=30,
            what="new handshakes present the rotated certificate",
        )  # fmt: skip
        mark = len(served)
        await eventually(
            lambda: len(served) >= mark + 20 and len(after_rotation) == 2, seconds=30,
            what="traffic after the rotation, on both kept-alive connections too",
        )  # fmt: skip
    finally:
        stop = True
        await asyncio.gather(*tasks)
    assert failures == []
    # Connections open before the rotation went on with their certificate.
    assert {serial for kind, serial in served if kind == "kept"} == {old.serial}


@pytest.fixture
async def tls_backends(ca: tlscerts.CA) -> AsyncIterator[list[tls_traffic.TLSBackend]]:
    servers = [
        await tls_traffic.TLSBackend("ta", ca.issue(A)).start(),
        await tls_traffic.TLSBackend("tb", ca.issue(B)).start(),
        await tls_traffic.TLSBackend("td", ca.issue("default.example.test")).start(),
    ]
    yield servers
    for s in servers:
        await s.stop()


def passthrough(servers: list[tls_traffic.TLSBackend], *, default: bool) -> proxy.ProxyConfig:
    routes = [("ta", (A,)), ("tb", (B,))] + ([("td", ())] if default else [])
    by_name = {s.name: s for s in servers}
    return proxy.ProxyConfig(
        node_id="test",
        listeners=(proxy.Listener(
            name="tls", address="127.0.0.1", port=backends.free_port(),
            protocol=proxy.Protocol.TLS,
            sni_routes=tuple(
                proxy.SNIRoute(name=f"r-{c}", server_names=names,
                               backends=(proxy.WeightedCluster(cluster=c),))
                for c, names in routes
            ),
        ),),
        clusters=tuple(
            proxy.Cluster(name=c, protocol=proxy.Protocol.TCP,
                          endpoints=irs.endpoints([by_name[c]]))
            for c, _ in routes
        ),
    )  # fmt: skip


async def test_passthrough_by_server_name(plane: Plane, tls_backends, ca: tlscerts.CA) -> None:
    config = passthrough(tls_backends, default=False)
    await plane.apply(config)
    addr = irs.address(config)
    client = tls_traffic.client_context(ca)
    ta, tb, td = tls_backends
    assert await tls_traffic.passthrough_greeting(addr, A, client) == ("ta", ta.issued.serial)
    for host in ("x.b.example.test",):
        assert await tls_traffic.passthrough_greeting(addr, host, client) == (
            "tb", tb.issued.serial,
        )  # fmt: skip
    assert await tls_traffic.refused(addr, "default.example.test", client)
    assert td.handshakes == 0
    config = dataclasses.replace(
        passthrough(tls_backends, default=True),
        listeners=(dataclasses.replace(
            passthrough(tls_backends, default=True).listeners[0], port=addr[1]),),
    )  # fmt: skip
    await plane.apply(config)
    assert await tls_traffic.passthrough_greeting(addr, "default.example.test", client) == (
        "td", td.issued.serial,
    )  # fmt: skip


async def _hostile(addr: tls_traffic.Address, stalled: list[asyncio.StreamWriter]) -> None:
    """Garbage, a plain-text request, a cut ClientHello left hanging (slowloris) and one sent
    a byte at a time, on one port."""
    hello = _client_hello_bytes(A)
    for payload in (os.urandom(512), b"GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n",
                    b"\x16\x03\x01\xff\xff" + os.urandom(64)):  # fmt: skip
        _, writer = await asyncio.open_connection(*addr)
        writer.write(payload)
        stalled.append(writer)
    for cut in (1, 5, 40, len(hello) - 1):
        _, writer = await asyncio.open_connection(*addr)
        writer.write(hello[:cut])
        stalled.append(writer)
    _, writer = await asyncio.open_connection(*addr)
    for byte in hello[:50]:
        writer.write(bytes([byte]))
        await writer.drain()
    stalled.append(writer)


def _client_hello_bytes(server_name: str) -> bytes:
    import ssl

    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


async def test_hostile_clients_do_not_hurt_others(
    plane: Plane, web, tls_backends, ca: tlscerts.CA
) -> None:
    cert_a = ca.issue(A)
    terminating = https(web, {(A,): cert_a})
    passing = passthrough(tls_backends, default=False)
    config = dataclasses.replace(
        terminating,
        listeners=(*terminating.listeners, *passing.listeners),
        clusters=(*terminating.clusters, *passing.clusters),
    )
    await plane.apply(config)
    https_addr, tls_addr = irs.address(terminating), irs.address(passing)
    client = tls_traffic.client_context(ca)
    stalled: list[asyncio.StreamWriter] = []
    try:
        for _ in range(3):
            await _hostile(https_addr, stalled)
            await _hostile(tls_addr, stalled)
        for _ in range(5):
            status, _, serial = await tls_traffic.https_get(https_addr, A, client)
            assert (status, serial) == (200, cert_a.serial)
            assert (await tls_traffic.passthrough_greeting(tls_addr, A, client))[0] == "ta"
    finally:
        for writer in stalled:
            writer.transport.abort()
    # And still, once they are gone.
    status, _, _ = await tls_traffic.https_get(https_addr, A, client)
    assert status == 200


async def test_a_client_asking_to_close_is_told_so(plane: Plane, web, ca: tlscerts.CA) -> None:
    """The backend keeps its connection to the proxy alive, yet the client that sent
    `connection: close` reads `connection: close` (wrk, measuring new handshakes, relies on it)."""
    config = https(web, {(A,): ca.issue(A)})
    await plane.apply(config)
    conn = await tls_traffic.Connection.open(irs.address(config), A, tls_traffic.client_context(ca))
    try:
        async with asyncio.timeout(10):
            status, headers, _ = await scenarios.http_request(
                ("", 0), scenarios.get("/", A, "connection: close\r\n"),
                reader_writer=(conn.reader, conn.writer),
            )  # fmt: skip
            assert (status, headers.get("connection")) == (200, "close")
            assert await conn.reader.read() == b""
    finally:
        await conn.close()
