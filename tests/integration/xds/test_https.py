"""HTTPS at a real Envoy programmed by our ADS server: certificates by SDS chosen by SNI, a
rotation under a steady request stream, and TLS passthrough by SNI."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kubelb.envoy import supervisor
from kubelb.ir import proxy, tls
from kubelb.xds import snapshot
from tests.integration.manager.helpers import http_backend
from tests.integration.xds import backends
from tests.integration.xds.conftest import NODE, Xds, both_flavours
from tests.support import tlscerts, tlsclient

pytestmark = pytest.mark.integration

A, B = "a.example.com", "b.example.com"


def secret(name: str, issued: tlscerts.Issued) -> tls.TLSSecret:
    return tls.TLSSecret(name=name, certificate_chain=issued.cert_pem, private_key=issued.key_pem)


def https_config(port: int, backend_port: int, a: tlscerts.Issued, b: tlscerts.Issued,
                 *, default: bool = False) -> proxy.ProxyConfig:  # fmt: skip
    to_web = (proxy.WeightedCluster(cluster="web"),)
    hosts = tuple(
        proxy.VirtualHost(name=h, domains=(h,), routes=(proxy.HTTPRoute(name=h, backends=to_web),))
        for h in (A, B)
    )
    certificates = [
        proxy.ServerCertificate(server_names=(A,), secret="t/a"),
        proxy.ServerCertificate(server_names=(B,), secret="t/b"),
    ]
    if default:
        certificates.append(proxy.ServerCertificate(server_names=(), secret="t/a"))
    listener = proxy.Listener(
        name="https", address="127.0.0.1", port=port, protocol=proxy.Protocol.HTTP,
        virtual_hosts=hosts, tls=proxy.ListenerTLS(certificates=tuple(certificates)),
    )  # fmt: skip
    web = proxy.Cluster(
        name="web", protocol=proxy.Protocol.HTTP,
        endpoints=(proxy.Endpoint(address="127.0.0.1", port=backend_port),),
    )  # fmt: skip
    return proxy.ProxyConfig(
        node_id=NODE, listeners=(listener,), clusters=(web,),
        secrets=(secret("t/a", a), secret("t/b", b)),
    )  # fmt: skip


@contextlib.asynccontextmanager
async def serving(xds: Xds, envoys: supervisor.EnvoySupervisor,
                  config: proxy.ProxyConfig) -> AsyncIterator[None]:  # fmt: skip
    xds.publish(config)
    await envoys.ensure(NODE, xds.spec())
    async with asyncio.timeout(30):
        await envoys.wait_ready(NODE)
    yield


@both_flavours
async def test_each_host_gets_its_certificate_by_sni(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    ca = tlscerts.make_ca()
    a, b = ca.issue(A), ca.issue(B)
    context = tlsclient.client_context(ca.cert_pem)
    port, backend_port = backends.free_port(), backends.free_port()
    async with (
        http_backend("127.0.0.1", backend_port, "web"),
        serving(xds, envoys, https_config(port, backend_port, a, b)),
    ):

        async def served() -> bool:
            return await tlsclient.served_serial(port, A, context) == a.serial

        await backends.eventually(served, what="HTTPS on the listener")
        for host, issued in ((A, a), (B, b)):
            conn = await tlsclient.HTTPSConnection.open(port, host, context)
            try:
                assert conn.serial == issued.serial, host
                assert await conn.get("/x", host) == (200, "web /x")
            finally:
                await conn.close()
        # An SNI no certificate names, and no SNI at all: no default, the handshake is refused.
        loose = ssl.create_default_context(cadata=ca.cert_pem)
        loose.check_hostname = False
        for name in ("unknown.example.com", None):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await tlsclient.served_serial(port, name, loose)  # type: ignore[arg-type]
        status = xds.cache.status(NODE)
        assert status.in_sync()
        assert status.last_nack is None
        # The listener holds no key material: the keys travel by SDS only.
        snap = xds.cache.get_snapshot(NODE)
        assert snap is not None
        (listener,) = snap[snapshot.LISTENER].items.values()
        assert b"PRIVATE KEY" not in listener.value
        assert sorted(snap[snapshot.SECRET].items) == ["t/a", "t/b"]


@both_flavours
async def test_a_default_certificate_serves_unknown_sni(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    ca = tlscerts.make_ca()
    a, b = ca.issue(A), ca.issue(B)
    loose = ssl.create_default_context(cadata=ca.cert_pem)
    loose.check_hostname = False
    port, backend_port = backends.free_port(), backends.free_port()
    async with (
        http_backend("127.0.0.1", backend_port, "web"),
        serving(xds, envoys, https_config(port, backend_port, a, b, default=True)),
    ):

        async def served() -> bool:
            return await tlsclient.served_serial(port, "other.example.com", loose) == a.serial

        await backends.eventually(served, what="the default certificate")
        assert await tlsclient.served_serial(port, B, loose) == b.serial


class Stream:
    """Requests back to back on `keepalive` open connections, and on new connections."""

    def __init__(self, port: int, host: str, context: ssl.SSLContext, keepalive: int) -> None:
        self.port, self.host, self.context, self.keepalive = port, host, context, keepalive
        self.ok = 0
        self.failures: list[str] = []
        self.new_serials: list[tuple[float, int]] = []  # (monotonic time, serial) per new conn
        self.kept_serials: set[int] = set()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Stream:
        conns = [await tlsclient.HTTPSConnection.open(self.port, self.host, self.context)
                 for _ in range(self.keepalive)]  # fmt: skip
        self._tasks = [asyncio.create_task(self._kept(c)) for c in conns]
        self._tasks.append(asyncio.create_task(self._fresh()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _kept(self, conn: tlsclient.HTTPSConnection) -> None:
        self.kept_serials.add(conn.serial)
        try:
            while not self._stop.is_set():
                await self._request(conn)
        finally:
            await conn.close()

    async def _fresh(self) -> None:
        while not self._stop.is_set():
            try:
                conn = await tlsclient.HTTPSConnection.open(self.port, self.host, self.context)
            except (OSError, ssl.SSLError, TimeoutError) as e:
                self.failures.append(f"connect: {e!r}")
                continue
            self.new_serials.append((time.monotonic(), conn.serial))
            await self._request(conn)
            await conn.close()

    async def _request(self, conn: tlsclient.HTTPSConnection) -> None:
        try:
            answer = await conn.get("/r", self.host)
        except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as e:
            self.failures.append(f"request: {e!r}")
            await asyncio.sleep(0.01)
            return
        if answer == (200, "web /r"):
            self.ok += 1
        else:
            self.failures.append(f"answer: {answer!r}")


@both_flavours
async def test_rotation_under_load_drops_nothing(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    ca = tlscerts.make_ca()
    a, b = ca.issue(A), ca.issue(B)
    rotated = ca.issue(A)
    context = tlsclient.client_context(ca.cert_pem)
    port, backend_port = backends.free_port(), backends.free_port()
    async with (
        http_backend("127.0.0.1", backend_port, "web"),
        serving(xds, envoys, https_config(port, backend_port, a, b)),
    ):

        async def served() -> bool:
            return await tlsclient.served_serial(port, A, context) == a.serial

        await backends.eventually(served, what="HTTPS on the listener")
        pid = envoys.pid(NODE)
        async with Stream(port, A, context, keepalive=4) as stream:
            await backends.eventually(_count(stream, 50), what="requests before the rotation")
            before = xds.cache.get_snapshot(NODE)
            assert before is not None
            published = time.monotonic()
            after = xds.publish(https_config(port, backend_port, rotated, b))
            changed = [t for t, v in after.versions.items() if before.versions[t] != v]
            assert changed == [snapshot.SECRET], "a rotation changes the secret alone"

            async def rotated_served() -> bool:
                return any(s == rotated.serial for _, s in stream.new_serials)

            await backends.eventually(rotated_served, what="the new certificate served")
            served_at = next(t for t, s in stream.new_serials if s == rotated.serial)
            settled = stream.ok
            await backends.eventually(_count(stream, settled + 50), what="requests after it")
        assert stream.failures == []
        assert stream.kept_serials == {a.serial}, "open connections kept their handshake"
        assert await tlsclient.served_serial(port, A, context) == rotated.serial
        assert envoys.pid(NODE) == pid
        print(f"rotation: new certificate on new connections {served_at - published:.3f}s "
              f"after the snapshot; {stream.ok} requests, 0 failed")  # fmt: skip


def _count(stream: Stream, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return stream.ok >= n

    return check


@both_flavours
async def test_passthrough_routes_by_sni_without_terminating(
    xds: Xds, envoys: supervisor.EnvoySupervisor
) -> None:
    ca = tlscerts.make_ca()
    db, other = ca.issue("db.example.com"), ca.issue("other.example.com")
    context = tlsclient.client_context(ca.cert_pem)
    port = backends.free_port()
    async with (
        tlsclient.tls_echo(db, "db") as db_port,
        tlsclient.tls_echo(other, "other") as other_port,
    ):
        clusters = tuple(
            proxy.Cluster(name=n, protocol=proxy.Protocol.TCP,
                          endpoints=(proxy.Endpoint(address="127.0.0.1", port=p),))
            for n, p in (("db", db_port), ("other", other_port))
        )  # fmt: skip
        routes = tuple(
            proxy.SNIRoute(name=n, server_names=(f"{n}.example.com",),
                           backends=(proxy.WeightedCluster(cluster=n),))
            for n in ("db", "other")
        )  # fmt: skip
        listener = proxy.Listener(name="pass", address="127.0.0.1", port=port,
                                  protocol=proxy.Protocol.TLS, sni_routes=routes)  # fmt: skip
        config = proxy.ProxyConfig(node_id=NODE, listeners=(listener,), clusters=clusters)
        async with serving(xds, envoys, config):

            async def served() -> bool:
                return await tlsclient.served_serial(port, "db.example.com", context) == db.serial

            await backends.eventually(served, what="passthrough to db")
            for name, issued in (("db", db), ("other", other)):
                async with asyncio.timeout(5):
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", port, ssl=context, server_hostname=f"{name}.example.com"
                    )
                    writer.write(b"hello\n")
                    assert await reader.readline() == f"{name}:hello\n".encode()
                    writer.close()
                assert await tlsclient.served_serial(port, f"{name}.example.com",
                                                     context) == issued.serial  # fmt: skip
            loose = ssl.create_default_context(cadata=ca.cert_pem)
            loose.check_hostname = False
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await tlsclient.served_serial(port, "unknown.example.com", loose)
