"""Layer 7 end to end (upstream's L7 e2e list): a tenant's Ingress, Gateway, HTTPRoute and
GRPCRoute become Routes in the management cluster, and the tenant's Envoy routes requests to the
tenant's NodePorts itself. The agents, the manager and the Envoys are real processes; HTTP and
gRPC backends listen on the tenant nodes' addresses at the Services' NodePorts.

The Gateway API scenarios share one Gateway per tenant (kubelb serves one, named `kubelb`), so
they run in one test, step by step, each step named in its assertion messages."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import pytest

from kubelb.kube import client, objects, resources
from tests.e2e.conftest import POOL, Stack
from tests.e2e.helpers import find, until
from tests.integration.dataplane import backends as http_backends, scenarios

pytestmark = pytest.mark.e2e

GATEWAY_API = "gateway.networking.k8s.io/v1"
GATEWAY_PORT = 8480
GRPC_SERVICE = "kubelb.e2e.Echo"


def node_port_service(name: str, port: int = 80) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "NodePort",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    }


async def service_node_port(kube: client.Client, namespace: str, name: str) -> int:
    svc = await kube.get(resources.SERVICES, name, namespace=namespace)
    return int(svc["spec"]["ports"][0]["nodePort"])


@contextlib.asynccontextmanager
async def http_on_nodes(
    nodes: Mapping[str, str], port: int, name: str
) -> AsyncIterator[list[http_backends.HTTPBackend]]:
    """An HTTP backend named `name` on every node at `port` (the Service's NodePort)."""
    started = [
        await http_backends.HTTPBackend(name, host=address, port=port).start()
        for address in sorted(nodes.values())
    ]
    try:
        yield started
    finally:
        for backend in started:
            await backend.stop()


Backends = dict[str, list[http_backends.HTTPBackend]]


@contextlib.asynccontextmanager
async def services(
    kube: client.Client, nodes: Mapping[str, str], namespace: str, *names: str
) -> AsyncIterator[Backends]:
    """NodePort Services `names` in `namespace`, each answered on every node by a backend of
    the same name; yields the backends by name."""
    started: Backends = {}
    async with contextlib.AsyncExitStack() as stack:
        for name in names:
            await kube.create(resources.SERVICES, node_port_service(name), namespace=namespace)
            port = await service_node_port(kube, namespace, name)
            started[name] = await stack.enter_async_context(http_on_nodes(nodes, port, name))
        yield started


# Upstream's L7 `headers` scenarios: the client's own and Authorization headers arrive unchanged.
SENT_HEADERS = {"authorization": "Bearer e2e-token", "x-custom-header": "kept as sent"}


async def headers_arrive(ip: str, port: int, host: str, backends: list[http_backends.HTTPBackend],
                         path: str) -> None:  # fmt: skip
    """A request to `path` carrying SENT_HEADERS is answered by one of `backends`, which saw
    every one of them as sent."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in SENT_HEADERS.items())
    status, _, _ = await answer(ip, port, host, path, extra)
    assert status == 200, (host, path, status)
    seen = [r.headers for b in backends for r in b.requests if r.target == path]
    assert seen, f"no backend saw {path}"
    assert {k: seen[-1].get(k) for k in SENT_HEADERS} == SENT_HEADERS


def ingress(
    name: str,
    rules: list[dict[str, Any]],
    *,
    default: str | None = None,
    ingress_class: str = "kubelb",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"ingressClassName": ingress_class, "rules": rules}
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name},
        "spec": spec,
    }


def rule(host: str | None, *paths: tuple[str, str, str]) -> dict[str, Any]:
    """An Ingress rule: (path, pathType, service) entries."""
    body: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": p,
                    "pathType": t,
                    "backend": {"service": {"name": s, "port": {"number": 80}}},
                }
                for p, t, s in paths
            ]
        }
    }
    if host:
        body["host"] = host
    return body


async def served_ip(
    kube: client.Client, resource: resources.Resource, namespace: str, name: str
) -> str:
    """The address kubelb wrote into the tenant object's status."""

    async def ip() -> str | None:
        obj = await find(kube, resource, name, namespace)
        status = (obj or {}).get("status") or {}
        if resource is resources.GATEWAYS:
            addresses = status.get("addresses") or []
            return str(addresses[0]["value"]) if addresses else None
        entries = (status.get("loadBalancer") or {}).get("ingress") or []
        return str(entries[0]["ip"]) if entries and entries[0].get("ip") else None

    return await until(ip, what=f"an address in {name}'s status", deadline=90)


async def answer(
    ip: str,
    port: int,
    host: str,
    path: str = "/",
    extra: str = "",
) -> tuple[int, dict[str, str], bytes]:
    try:
        async with asyncio.timeout(5):
            return await scenarios.http_request(
                (ip, port), scenarios.get(path, host=host, extra=extra)
            )
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return 0, {}, b""


async def backend_of(ip: str, port: int, host: str, path: str = "/", extra: str = "") -> str:
    status, headers, _ = await answer(ip, port, host, path, extra)
    return headers.get("x-backend", "") if status == 200 else f"status {status}"


async def eventually_backend(
    ip: str, port: int, host: str, path: str, want: str, extra: str = ""
) -> None:
    async def check() -> bool:
        return await backend_of(ip, port, host, path, extra) == want

    await until(check, what=f"{host}{path} answered by {want}", deadline=90)


async def test_ingress_hosts_paths_default_backend_headers_websocket(
    stack: Stack, mgmt, kube_a, shop
):
    alpha = stack.tenants["alpha"]
    async with services(kube_a, alpha.nodes, shop, "api", "web", "other", "fallback") as started:
        # A Service with nothing listening at its NodePort: its path answers 503.
        await kube_a.create(resources.SERVICES, node_port_service("down"), namespace=shop)
        body = ingress(
            "store",
            [
                rule(
                    "a.shop.test",
                    ("/api", "Prefix", "api"),
                    ("/down", "Prefix", "down"),
                    ("/", "Prefix", "web"),
                ),
                rule(
                    "b.shop.test",
                    ("/exact", "Exact", "api"),
                    ("/", "ImplementationSpecific", "other"),
                ),
            ],
            default="fallback",
        )
        created = await kube_a.create(resources.INGRESSES, body, namespace=shop)
        ip = await served_ip(kube_a, resources.INGRESSES, shop, "store")
        assert ip in POOL
        await eventually_backend(ip, 80, "a.shop.test", "/api/items", "api")
        cases = [
            ("a.shop.test", "/api", "api"),
            ("a.shop.test", "/apix", "web"),  # prefixes match whole segments
            ("a.shop.test", "/", "web"),
            ("b.shop.test", "/exact", "api"),
            ("b.shop.test", "/exact/more", "other"),
            ("B.SHOP.TEST", "/x", "other"),
            ("unknown.test", "/anything", "fallback"),  # the default backend
        ]
        for host, path, want in cases:
            assert await backend_of(ip, 80, host, path) == want, (host, path)
        # A route whose backends are all unavailable answers 503.
        assert await backend_of(ip, 80, "a.shop.test", "/down") == "status 503"
        await headers_arrive(ip, 80, "a.shop.test", started["web"], "/headers")
        # The client's address reaches the backend in X-Forwarded-For (not from 127.0.0.1,
        # which Envoy names by the host's own address: docs/dataplane-differences.md).
        assert await seen_xff(ip, "a.shop.test", client="127.0.0.9") == ["127.0.0.9"]
        # Large request headers pass (upstream's limits are generous).
        status, _, _ = await answer(ip, 80, "a.shop.test", "/", f"x-big: {'b' * 60_000}\r\n")
        assert status == 200
        await websocket_echo(ip, "a.shop.test", "web")

        route = await find(mgmt, resources.ROUTES, objects.uid(created), alpha.namespace)
        assert route is not None
        assert route["metadata"]["labels"]["kubelb.k8c.io/origin-name"] == "store"
        (applied,) = route["status"]["resources"]["route"]["conditions"]
        assert (applied["type"], applied["status"]) == ("ResourceAppliedSuccessfully", "True")

        await kube_a.delete(resources.INGRESSES, "store", namespace=shop)

        async def gone() -> bool:
            return await find(mgmt, resources.ROUTES, objects.uid(created), alpha.namespace) is None

        await until(gone, what="the Route removed with its Ingress")
        # 404, or no listener at all once the tenant has no HTTP route left.
        await until(lambda: _not_served(ip, 80, "a.shop.test"), what="the host no longer served")


async def seen_xff(ip: str, host: str, *, client: str) -> list[str]:
    reader, writer = await asyncio.open_connection(ip, 80, local_addr=(client, 0))
    try:
        _, headers, _ = await scenarios.http_request(
            (ip, 80), scenarios.get("/xff", host=host), reader_writer=(reader, writer)
        )
    finally:
        writer.close()
    return [part.strip() for part in headers["x-seen-xff"].split(",")]


async def _not_served(ip: str, port: int, host: str) -> bool:
    status, _, _ = await answer(ip, port, host)
    return status in (0, 404)


async def websocket_echo(ip: str, host: str, backend: str) -> None:
    reader, writer = await asyncio.open_connection(ip, 80)
    try:
        writer.write(
            f"GET /ws HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\n"
            "connection: upgrade\r\nsec-websocket-version: 13\r\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.write(b"ping")
        assert await reader.readexactly(len(backend) + 5) == f"{backend}|ping".encode()
    finally:
        writer.close()


async def test_wrong_ingress_class_is_ignored_and_tenants_are_isolated(
    stack: Stack, mgmt, kube_a, kube_b, shop
):
    alpha, beta = stack.tenants["alpha"], stack.tenants["beta"]
    async with (
        services(kube_a, alpha.nodes, shop, "web"),
        services(kube_b, beta.nodes, shop, "web-b"),
    ):
        foreign = await kube_a.create(
            resources.INGRESSES,
            ingress(
                "foreign", [rule("f.shop.test", ("/", "Prefix", "web"))], ingress_class="nginx"
            ),
            namespace=shop,
        )
        # The same Ingress name and host in both tenants, each to its own backend.
        await kube_a.create(
            resources.INGRESSES,
            ingress("same", [rule("same.test", ("/", "Prefix", "web"))]),
            namespace=shop,
        )
        await kube_b.create(
            resources.INGRESSES,
            ingress("same", [rule("same.test", ("/", "Prefix", "web-b"))]),
            namespace=shop,
        )
        ip_a = await served_ip(kube_a, resources.INGRESSES, shop, "same")
        ip_b = await served_ip(kube_b, resources.INGRESSES, shop, "same")
        assert ip_a != ip_b
        await eventually_backend(ip_a, 80, "same.test", "/", "web")
        await eventually_backend(ip_b, 80, "same.test", "/", "web-b")
        # Served by then: the agent has seen the foreign Ingress long before, and left it alone.
        assert await find(mgmt, resources.ROUTES, objects.uid(foreign), alpha.namespace) is None
        status = (await kube_a.get(resources.INGRESSES, "foreign", namespace=shop)).get("status")
        assert not ((status or {}).get("loadBalancer") or {}).get("ingress")
        assert await backend_of(ip_a, 80, "f.shop.test") == "status 404"
        routes_a = (await mgmt.list(resources.ROUTES, namespace=alpha.namespace)).items
        routes_b = (await mgmt.list(resources.ROUTES, namespace=beta.namespace)).items
        assert {r["metadata"]["labels"]["kubelb.k8c.io/origin-ns"] for r in routes_a} >= {shop}
        assert not {objects.name(r) for r in routes_a} & {objects.name(r) for r in routes_b}
        for kube in (kube_a, kube_b):
            await kube.delete(resources.INGRESSES, "same", namespace=shop)
        await kube_a.delete(resources.INGRESSES, "foreign", namespace=shop)


def gateway(name: str = "kubelb", gateway_class: str = "kubelb") -> dict[str, Any]:
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {
            "gatewayClassName": gateway_class,
            "listeners": [{"name": "http", "protocol": "HTTP", "port": GATEWAY_PORT}],
        },
    }


def backend_ref(
    name: str, weight: int | None = None, namespace: str | None = None
) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "port": 80}
    if weight is not None:
        ref["weight"] = weight
    if namespace:
        ref["namespace"] = namespace
    return ref


def http_route(name: str, hostnames: list[str], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": "kubelb"}], "hostnames": hostnames, "rules": rules},
    }


def accepted(route: objects.RawObject | None) -> bool:
    """Our parent entry says Accepted at the route's own generation."""
    if route is None:
        return False
    generation = route["metadata"]["generation"]
    return any(
        c.get("type") == "Accepted"
        and c.get("status") == "True"
        and c.get("observedGeneration") == generation
        for parent in (route.get("status") or {}).get("parents") or ()
        for c in parent.get("conditions") or ()
    )


async def test_gateway_httproutes_and_grpcroutes(stack: Stack, mgmt, kube_a, kube_b, shop):
    alpha, beta = stack.tenants["alpha"], stack.tenants["beta"]
    elsewhere = f"{shop}-x"
    await kube_a.create(resources.NAMESPACES, {"metadata": {"name": elsewhere}})
    try:
        async with (
            services(kube_a, alpha.nodes, shop, "web", "api", "canary", "shared") as started,
            services(kube_a, alpha.nodes, elsewhere, "remote"),
            grpc_service(kube_a, alpha.nodes, shop, "grpc"),
        ):
            await _gateway_scenarios(stack, mgmt, kube_a, kube_b, shop, elsewhere, started)
    finally:
        await kube_a.delete(resources.NAMESPACES, elsewhere)
        for kube in (kube_a, kube_b):
            with contextlib.suppress(Exception):
                await kube.delete(resources.GATEWAYS, "kubelb", namespace=shop)
    del beta


async def _gateway_scenarios(
    stack: Stack, mgmt, kube_a, kube_b, shop: str, elsewhere: str, started: Backends
):
    alpha = stack.tenants["alpha"]
    # Wrong class: beta's Gateway `kubelb` of another class is not ours.
    await kube_b.create(resources.GATEWAYS, gateway(gateway_class="other"), namespace=shop)
    gw = await kube_a.create(resources.GATEWAYS, gateway(), namespace=shop)
    ip = await served_ip(kube_a, resources.GATEWAYS, shop, "kubelb")

    async def programmed() -> bool:
        obj = await kube_a.get(resources.GATEWAYS, "kubelb", namespace=shop)
        conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or ()}
        return all(
            conditions.get(t, {}).get("status") == "True"
            and conditions[t].get("observedGeneration") == obj["metadata"]["generation"]
            for t in ("Accepted", "Programmed")
        )

    await until(programmed, what="the Gateway Accepted and Programmed")

    routes = [
        http_route(
            "hosts",
            ["app.shop.test"],
            [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                    "backendRefs": [backend_ref("api")],
                },
                {
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": "/"},
                            "headers": [{"name": "x-canary", "value": "yes"}],
                        }
                    ],
                    "backendRefs": [backend_ref("canary")],
                },
                {"backendRefs": [backend_ref("web")]},
            ],
        ),
        http_route("wild", ["*.wild.shop.test"], [{"backendRefs": [backend_ref("shared")]}]),
        http_route("shared-too", ["shared.shop.test"], [{"backendRefs": [backend_ref("shared")]}]),
        http_route(
            "split",
            ["split.shop.test"],
            [
                {"backendRefs": [backend_ref("web", 3), backend_ref("canary", 1)]},
            ],
        ),
        http_route(
            "remote",
            ["remote.shop.test"],
            [
                {"backendRefs": [backend_ref("remote", namespace=elsewhere)]},
            ],
        ),
    ]
    for body in routes:
        await kube_a.create(resources.HTTP_ROUTES, body, namespace=shop)
    for body in routes:
        name = body["metadata"]["name"]

        async def route_accepted(name: str = name) -> bool:
            return accepted(await find(kube_a, resources.HTTP_ROUTES, name, shop))

        await until(route_accepted, what=f"HTTPRoute {name} Accepted", deadline=90)
    port = GATEWAY_PORT
    await eventually_backend(ip, port, "app.shop.test", "/api/v1", "api")
    cases = [
        ("app.shop.test", "/api", "", "api"),  # path matching
        ("app.shop.test", "/", "", "web"),
        ("app.shop.test", "/", "x-canary: yes\r\n", "canary"),  # header matching
        ("app.shop.test", "/", "x-canary: no\r\n", "web"),
        ("one.wild.shop.test", "/", "", "shared"),  # wildcard hostname
        ("two.deep.wild.shop.test", "/", "", "shared"),
        ("shared.shop.test", "/", "", "shared"),  # one backend, two routes
        ("remote.shop.test", "/", "", "remote"),  # cross-namespace backend
        ("nothing.shop.test", "/", "", "status 404"),
    ]
    for host, path, extra, want in cases:
        assert await backend_of(ip, port, host, path, extra) == want, (host, path, extra)
    await headers_arrive(ip, port, "app.shop.test", started["web"], "/headers")
    # Large request headers pass through an HTTPRoute too.
    status, _, _ = await answer(ip, port, "app.shop.test", "/", f"x-big: {'b' * 60_000}\r\n")
    assert status == 200
    counts = collections.Counter(
        [await backend_of(ip, port, "split.shop.test") for _ in range(200)]
    )
    assert set(counts) == {"web", "canary"}, counts
    assert 110 <= counts["web"] <= 190, counts

    # Backend removal: the split loses its canary.
    split = await kube_a.get(resources.HTTP_ROUTES, "split", namespace=shop)
    split["spec"]["rules"][0]["backendRefs"] = [backend_ref("web")]
    await kube_a.replace(resources.HTTP_ROUTES, split)

    async def only_web() -> bool:
        seen = {await backend_of(ip, port, "split.shop.test") for _ in range(20)}
        return seen == {"web"}

    await until(only_web, what="the removed backend no longer answers", deadline=90)

    await grpc_scenarios(kube_a, shop, ip)

    # Reconcile stability: another tenant object changing leaves the served ones unwritten.
    names = [body["metadata"]["name"] for body in routes]
    before = {
        n: (await kube_a.get(resources.HTTP_ROUTES, n, namespace=shop))["metadata"][
            "resourceVersion"
        ]
        for n in names
    }
    # The Gateway's Route is left out: its listener counts the attached routes, one more now.
    mgmt_before = {
        objects.name(r): r["metadata"]["resourceVersion"]
        for r in (await mgmt.list(resources.ROUTES, namespace=alpha.namespace)).items
        if objects.name(r) != objects.uid(gw)
    }
    await kube_a.create(
        resources.HTTP_ROUTES,
        http_route("late", ["late.shop.test"], [{"backendRefs": [backend_ref("web")]}]),
        namespace=shop,
    )
    await eventually_backend(ip, port, "late.shop.test", "/", "web")
    after = {
        n: (await kube_a.get(resources.HTTP_ROUTES, n, namespace=shop))["metadata"][
            "resourceVersion"
        ]
        for n in names
    }
    assert after == before, "served HTTPRoutes were written again"
    mgmt_after = {
        objects.name(r): r["metadata"]["resourceVersion"]
        for r in (await mgmt.list(resources.ROUTES, namespace=alpha.namespace)).items
    }
    unchanged = {k: v for k, v in mgmt_after.items() if k in mgmt_before}
    assert unchanged == mgmt_before, "served Routes were written again"

    # The wrong-class Gateway in beta never got a Route or a status.
    beta = stack.tenants["beta"]
    foreign = await kube_b.get(resources.GATEWAYS, "kubelb", namespace=shop)
    assert not (foreign.get("status") or {}).get("addresses")
    assert await find(mgmt, resources.ROUTES, objects.uid(foreign), beta.namespace) is None


@contextlib.asynccontextmanager
async def grpc_service(
    kube: client.Client, nodes: Mapping[str, str], namespace: str, name: str
) -> AsyncIterator[None]:
    """A NodePort Service answered on every node by a real gRPC server with two methods:
    `Say` echoes `<name>:<request>`, `Shout` the same in upper case."""
    await kube.create(resources.SERVICES, node_port_service(name), namespace=namespace)
    port = await service_node_port(kube, namespace, name)

    def unary(fn: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=None, response_serializer=None
        )

    async def say(request: bytes, context: Any) -> bytes:
        return f"{name}:".encode() + request

    async def shout(request: bytes, context: Any) -> bytes:
        return f"{name}:".encode() + request.upper()

    handler = grpc.method_handlers_generic_handler(
        GRPC_SERVICE, {"Say": unary(say), "Shout": unary(shout)}
    )
    servers = []
    for address in sorted(nodes.values()):
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"{address}:{port}")
        await server.start()
        servers.append(server)
    try:
        yield
    finally:
        for server in servers:
            await server.stop(None)


async def grpc_scenarios(kube_a: client.Client, shop: str, ip: str) -> None:
    body = {
        "apiVersion": GATEWAY_API,
        "kind": "GRPCRoute",
        "metadata": {"name": "echo"},
        "spec": {
            "parentRefs": [{"name": "kubelb"}],
            "hostnames": ["grpc.shop.test"],
            "rules": [
                {
                    "matches": [{"method": {"service": GRPC_SERVICE, "method": "Say"}}],
                    "backendRefs": [backend_ref("grpc")],
                }
            ],
        },
    }
    await kube_a.create(resources.GRPC_ROUTES, body, namespace=shop)
    options = [("grpc.default_authority", "grpc.shop.test")]
    async with grpc.aio.insecure_channel(f"{ip}:{GATEWAY_PORT}", options=options) as channel:
        say = channel.unary_unary(f"/{GRPC_SERVICE}/Say")
        shout = channel.unary_unary(f"/{GRPC_SERVICE}/Shout")

        async def says() -> bytes | None:
            try:
                return await say(b"hello", timeout=5)  # type: ignore[no-any-return]
            except grpc.aio.AioRpcError:
                return None

        assert await until(says, what="the GRPCRoute serves Say", deadline=90) == b"grpc:hello"
        # Method matching: only Say is routed; Shout has no route.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await shout(b"hello", timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
