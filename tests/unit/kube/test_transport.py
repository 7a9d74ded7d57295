"""kubelb's own HTTP transport against a real HTTPS server on 127.0.0.1: the CA it trusts, the
client certificate it presents, the Authorization header, query and body encoding, and the
client's retry with fresh credentials after a 401."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kubelb.kube import client, credentials, errors, kubeconfig, resources, transport
from kubelb.localcluster import certs


@dataclass
class Server:
    url: str
    ca: certs.CertPair
    client_cert: certs.CertPair
    token: str = "good"
    seen: list[dict[str, Any]] = field(default_factory=list)
    watches_end: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[certs.CertPair, ...]:
    directory = tmp_path_factory.mktemp("pki")
    ca = certs.create_ca(directory, common_name="test-ca")
    serving = certs.issue(ca, directory, "serving", common_name="api",
                          ip_addresses=["127.0.0.1"], server=True)  # fmt: skip
    user = certs.issue(ca, directory, "user", common_name="alice", client=True)
    return ca, serving, user


@pytest.fixture
async def server(pki: tuple[certs.CertPair, ...]) -> AsyncIterator[Server]:
    ca, serving, user = pki
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert))
    context.load_cert_chain(serving.cert, serving.key)
    context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is checked when sent
    state = Server("", ca, user)

    async def handle(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(x[0] for x in peer["subject"]) if peer else {}
        state.seen.append({
            "method": request.method, "path": request.path, "query": list(request.query.items()),
            "authorization": request.headers.get("Authorization"),
            "content_type": request.headers.get("Content-Type"),
            "body": (await request.read()).decode(), "client_cn": subject.get("commonName"),
        })  # fmt: skip
        if subject.get("commonName") != "alice" and (
            request.headers.get("Authorization") != f"Bearer {state.token}"
        ):
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        if request.query.get("watch") == "true":  # one event, then open until the test ends
            stream = web.StreamResponse()
            await stream.prepare(request)
            event = {"type": "ADDED", "object": {"metadata": {"name": "x", "namespace": "ns"}}}
            await stream.write(json.dumps(event).encode() + b"\n")
            await state.watches_end.wait()
            return stream
        return web.json_response({"metadata": {"name": "x", "namespace": "default"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"https://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.watches_end.set()
        await runner.cleanup()


def write_kubeconfig(path: Path, server: Server, user: dict[str, Any]) -> Path:
    ca = base64.b64encode(server.ca.cert.read_bytes()).decode()
    document = {
        "clusters": [{"name": "c", "cluster": {"server": server.url,
                                               "certificate-authority-data": ca}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }  # fmt: skip
    path.write_text(json.dumps(document))
    return path


async def test_client_certificate_from_kubeconfig_data(server: Server, tmp_path: Path):
    cert = base64.b64encode(server.client_cert.cert.read_bytes()).decode()
    key = base64.b64encode(server.client_cert.key.read_bytes()).decode()
    path = write_kubeconfig(tmp_path / "kc", server,
                            {"client-certificate-data": cert, "client-key-data": key})  # fmt: skip
    kube = client.Client(await kubeconfig.open_source(path))
    try:
        got = await kube.get(resources.CONFIG_MAPS, "x", namespace="default")
        assert got["kind"] == "ConfigMap"
        connection = await kube.connection()
        assert connection == client.Connection(server.url, server.ca.cert.read_bytes())
    finally:
        await kube.close()
    (seen,) = server.seen
    assert (seen["client_cn"], seen["authorization"]) == ("alice", None)
    assert seen["path"] == "/api/v1/namespaces/default/configmaps/x"


async def test_a_server_outside_the_trusted_ca_is_refused(server: Server, tmp_path: Path):
    other = certs.create_ca(tmp_path, common_name="other")
    endpoint = credentials.Endpoint(server=server.url, ca_pem=other.cert.read_bytes(),
                                    auth=credentials.StaticAuth("Bearer good"))  # fmt: skip
    api = transport.Api.connect(endpoint)
    try:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await api.open("GET", "/version")
    finally:
        await api.close()
    assert not server.seen


async def test_query_body_and_header_as_sent(server: Server):
    endpoint = credentials.Endpoint(server=server.url, ca_pem=server.ca.cert.read_bytes(),
                                    auth=credentials.StaticAuth("Bearer good"))  # fmt: skip
    api = transport.Api.connect(endpoint)
    kube = client.Client(api, field_manager="fm")  # a bare Api stays its caller's to close
    try:
        await kube.list(resources.CONFIG_MAPS, namespace="ns", label_selector="a=b,c in (d)")
        await kube.apply(resources.CONFIG_MAPS, {"metadata": {"name": "x", "namespace": "ns"}})
    finally:
        await kube.close()
        await api.close()
    listed, applied = server.seen
    assert listed["query"] == [("labelSelector", "a=b,c in (d)"), ("limit", "500")]
    assert listed["authorization"] == "Bearer good"
    assert applied["method"] == "PATCH"
    assert applied["content_type"] == "application/apply-patch+yaml"
    assert applied["query"] == [("fieldManager", "fm"), ("force", "true")]
    assert json.loads(applied["body"])["kind"] == "ConfigMap"


async def test_a_401_retries_once_with_the_rotated_token_file(server: Server, tmp_path: Path):
    (tmp_path / "token").write_text("stale")
    path = write_kubeconfig(tmp_path / "kc", server, {"tokenFile": str(tmp_path / "token")})
    kube = client.Client(kubeconfig.KubeconfigFile(path, check_interval=3600))
    try:
        with pytest.raises(errors.UnauthorizedError):  # nothing changed: no retry
            await kube.get(resources.CONFIG_MAPS, "x", namespace="default")
        assert [s["authorization"] for s in server.seen] == ["Bearer stale"]
        (tmp_path / "token").write_text("good")
        await kube.get(resources.CONFIG_MAPS, "x", namespace="default")
        assert [s["authorization"] for s in server.seen[1:]] == ["Bearer stale", "Bearer good"]
    finally:
        await kube.close()


async def test_a_changed_token_is_swapped_in_place(server: Server, tmp_path: Path):
    path = write_kubeconfig(tmp_path / "kc", server, {"token": "good"})
    source = kubeconfig.KubeconfigFile(path, check_interval=0)
    kube = client.Client(source)
    try:
        await kube.get(resources.CONFIG_MAPS, "x", namespace="default")
        api = await source.api()
        server.token = "renewed"
        write_kubeconfig(path, server, {"token": "renewed"})  # only the token differs
        await kube.get(resources.CONFIG_MAPS, "x", namespace="default")
        # The same connection pool: open watches on it keep running.
        assert await source.api() is api
        assert source.reloads == 1
        assert source.bearer_token() == "renewed"
        # The holder swaps a token itself (the agent renewing it); the file stays as it is.
        server.token = "minted"
        assert source.replace_token("minted")
        await kube.get(resources.CONFIG_MAPS, "x", namespace="default")
        assert await source.api() is api
        assert [s["authorization"] for s in server.seen] == [
            "Bearer good", "Bearer renewed", "Bearer minted"]  # fmt: skip
    finally:
        await kube.close()


async def test_a_changed_server_or_identity_gets_a_new_connection_pool(
    server: Server, tmp_path: Path
):
    path = write_kubeconfig(tmp_path / "kc", server, {"token": "good"})
    source = kubeconfig.KubeconfigFile(path, check_interval=0)
    kube = client.Client(source)
    try:
        api = await source.api()
        assert source.bearer_token() == "good"
        cert = server.client_cert
        write_kubeconfig(path, server, {
            "client-certificate-data": base64.b64encode(cert.cert.read_bytes()).decode(),
            "client-key-data": base64.b64encode(cert.key.read_bytes()).decode()})  # fmt: skip
        await kube.get(resources.CONFIG_MAPS, "x", namespace="default")
        assert await source.api() is not api
        assert source.bearer_token() is None
        assert not source.replace_token("t")  # no bearer token to replace
        assert server.seen[-1]["client_cn"] == "alice"
    finally:
        await kube.close()


async def test_open_watches_leave_the_request_connections_free(
    server: Server, monkeypatch: pytest.MonkeyPatch
):
    """Each watch holds a connection of its own; requests are capped beside them."""
    monkeypatch.setattr(client, "MAX_REQUESTS", 1)
    endpoint = credentials.Endpoint(server=server.url, ca_pem=server.ca.cert.read_bytes(),
                                    auth=credentials.StaticAuth("Bearer good"))  # fmt: skip
    api = transport.Api.connect(endpoint)
    kube = client.Client(api)
    try:
        async with (
            asyncio.timeout(30),  # a regression waits forever: fail instead
            kube.watch(resources.CONFIG_MAPS, namespace="ns") as one,
            kube.watch(resources.CONFIG_MAPS, namespace="ns") as two,
        ):
            assert [(await anext(w))["type"] for w in (one, two)] == ["ADDED", "ADDED"]
            # Were watches counted among the requests in flight, these would wait forever.
            got = await asyncio.gather(
                *(kube.get(resources.CONFIG_MAPS, "x", namespace="default") for _ in range(3))
            )
            assert [o["metadata"]["name"] for o in got] == ["x", "x", "x"]
    finally:
        await kube.close()
        await api.close()
    assert len([s for s in server.seen if ("watch", "true") in s["query"]]) == 2
