"""Gateway API route features on both data planes, where a data plane's own semantics could
surprise: prefix rewrites and their slash cases, redirect Locations and their ports, weighted
splits, header, query and method matches, header edits, mirrors, fixed statuses and timeouts.

Each test runs on Envoy (state of the world and incremental xDS) and on the Python data plane.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplanes.conftest import Plane, until

pytestmark = pytest.mark.integration

HOST = "example.test"
PREFIX = proxy.PathRewriteKind.PREFIX
FULL = proxy.PathRewriteKind.FULL


@pytest.fixture
async def web() -> AsyncIterator[list[backends.HTTPBackend]]:
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(3)]
    yield servers
    for s in servers:
        await s.stop()


def config(
    routes: Sequence[proxy.HTTPRoute], servers: Sequence[backends.HTTPBackend], port: int = 0
) -> proxy.ProxyConfig:
    """One listener, one virtual host for every host with `routes` in order, and one cluster per
    backend named as the backend (`h0`, ...)."""
    return proxy.ProxyConfig(
        node_id="test",
        listeners=(
            proxy.Listener(
                name="web",
                address="127.0.0.1",
                port=port or backends.free_port(),
                protocol=proxy.Protocol.HTTP,
                virtual_hosts=(proxy.VirtualHost(name="*", domains=("*",), routes=tuple(routes)),),
            ),
        ),
        clusters=tuple(
            proxy.Cluster(name=s.name, protocol=proxy.Protocol.HTTP, endpoints=irs.endpoints([s]))
            for s in servers
        ),
    )


def route(name: str, prefix: str = "/", *, to: str = "h0", **kw: object) -> proxy.HTTPRoute:
    return proxy.HTTPRoute(
        name=name,
        match=proxy.RouteMatch(path=proxy.PathMatch(value=prefix)),
        backends=(proxy.WeightedCluster(cluster=to),),
        **kw,  # type: ignore[arg-type]
    )


def rewrite(kind: proxy.PathRewriteKind, value: str) -> proxy.URLRewrite:
    return proxy.URLRewrite(path=proxy.PathRewrite(kind=kind, value=value))


async def upstream_target(addr: scenarios.Address, path: str) -> str:
    """The request target the backend received for `path` (its answer is `name target`)."""
    status, _, body = await scenarios.http_request(addr, scenarios.get(path, HOST))
    assert status == 200, path
    return body.decode().split(" ", 1)[1]


async def test_path_rewrites_keep_one_slash_and_the_query(plane: Plane, web) -> None:
    cfg = config(
        [
            route("strip", "/foo", rewrite=rewrite(PREFIX, "/")),
            route("slash", "/bar", rewrite=rewrite(PREFIX, "/xyz/")),
            route("plain", "/baz", rewrite=rewrite(PREFIX, "/xyz")),
            route("full", "/full", rewrite=rewrite(FULL, "/new")),
            route("root", "/", rewrite=rewrite(PREFIX, "/app")),
        ],
        web[:1],
    )
    await plane.apply(cfg)
    addr = irs.address(cfg)
    cases = [
        ("/foo/bar", "/bar"),
        ("/foo", "/"),
        ("/foo/", "/"),
        ("/foo/bar/?q=1", "/bar/?q=1"),
        ("/bar/x?q=1", "/xyz/x?q=1"),
        ("/bar", "/xyz"),
        ("/baz/x/y", "/xyz/x/y"),
        ("/baz/", "/xyz/"),
        ("/full/a/b?q=1&r=2", "/new?q=1&r=2"),
        # Whole segments: `/foobar` is not under `/foo`, so the root route rewrites it.
        ("/foobar", "/app/foobar"),
        ("/", "/app/"),
    ]
    for path, expected in cases:
        assert await upstream_target(addr, path) == expected, path


async def test_redirect_locations_follow_gateway_api_port_rules(plane: Plane, web) -> None:
    port = backends.free_port()

    def redirect(name: str, prefix: str, **kw: object) -> proxy.HTTPRoute:
        return proxy.HTTPRoute(
            name=name,
            match=proxy.RouteMatch(path=proxy.PathMatch(value=prefix)),
            redirect=proxy.Redirect(**kw),  # type: ignore[arg-type]
        )

    cfg = config(
        [
            redirect("https", "/https", scheme="https", status_code=301),
            redirect("https-port", "/https-port", scheme="https", port=8443),
            redirect("https-443", "/https-443", scheme="https", port=443, status_code=308),
            proxy.HTTPRoute(
                name="host",
                match=proxy.RouteMatch(path=proxy.PathMatch(value="/host")),
                redirect=proxy.Redirect(hostname="new.example"),
                # Response edits apply to every answer of a route, a redirect too.
                response_headers=proxy.HeaderModifier(set=(("x-moved", "yes"),)),
            ),
            redirect("port", "/port", port=9090, status_code=307),
            redirect("port-80", "/port-80", port=80),
            redirect("full", "/full", path=proxy.PathRewrite(kind=FULL, value="/new")),
            redirect("prefix", "/v1", path=proxy.PathRewrite(kind=PREFIX, value="/v2")),
            redirect("strip", "/strip", path=proxy.PathRewrite(kind=PREFIX, value="/")),
        ],
        web[:1],
        port=port,
    )
    await plane.apply(cfg)
    addr = irs.address(cfg)
    # A client on a non-default port names it in Host (`here`); one reaching port 80 through
    # something in front of the listener names none (`HOST`).
    here = f"{HOST}:{port}"
    envoy = plane.kind.startswith("envoy")
    cases = [
        (HOST, "/https/a?q=1", 301, f"https://{HOST}/https/a?q=1"),
        # Envoy replaces a port the Host names but cannot leave it out (documented).
        (here, "/https/a", 301, f"https://{HOST}{':443' if envoy else ''}/https/a"),
        (here, "/https-port", 302, f"https://{HOST}:8443/https-port"),
        (HOST, "/https-443", 308, f"https://{HOST}/https-443"),
        (HOST, "/host/x", 302, "http://new.example/host/x"),
        # Envoy drops the Host's port on a hostname redirect (documented).
        (here, "/host/x", 302, f"http://new.example{'' if envoy else f':{port}'}/host/x"),
        (here, "/port", 307, f"http://{HOST}:9090/port"),
        (HOST, "/port-80/x", 302, f"http://{HOST}/port-80/x"),
        # No scheme and no port: the Host as sent.
        (here, "/full/a?q=1", 302, f"http://{here}/new?q=1"),
        (HOST, "/full/a", 302, f"http://{HOST}/new"),
        (here, "/v1/a/b?q=1", 302, f"http://{here}/v2/a/b?q=1"),
        (here, "/strip/a", 302, f"http://{here}/a"),
        (here, "/strip", 302, f"http://{here}/"),
    ]
    for host, path, code, location in cases:
        status, headers, _ = await scenarios.http_request(addr, scenarios.get(path, host))
        assert (status, headers.get("location")) == (code, location), (host, path)
        assert (headers.get("x-moved") == "yes") is path.startswith("/host"), path
    assert web[0].requests == [], "a redirect never reaches a backend"


async def test_weighted_split_is_roughly_honoured(plane: Plane, web) -> None:
    def split(name: str, prefix: str, *weights: tuple[str, int]) -> proxy.HTTPRoute:
        return proxy.HTTPRoute(
            name=name,
            match=proxy.RouteMatch(path=proxy.PathMatch(value=prefix)),
            backends=tuple(proxy.WeightedCluster(cluster=c, weight=w) for c, w in weights),
        )

    cfg = config(
        [
            split("drained", "/drained", ("h0", 0), ("h1", 1)),
            split("split", "/", ("h0", 3), ("h1", 1)),
        ],
        web[:2],
    )
    await plane.apply(cfg)
    addr = irs.address(cfg)
    seen: collections.Counter[str] = collections.Counter()
    for i in range(400):
        _, headers, _ = await scenarios.http_request(addr, scenarios.get(f"/r{i}", HOST))
        seen[headers["x-backend"]] += 1
    # 3:1 over 400 requests: 300 expected, 40 either side is more than four standard deviations.
    assert 260 <= seen["h0"] <= 340, seen
    assert seen["h0"] + seen["h1"] == 400, seen
    drained: collections.Counter[str] = collections.Counter()
    for _ in range(40):
        _, headers, _ = await scenarios.http_request(addr, scenarios.get("/drained", HOST))
        drained[headers["x-backend"]] += 1
    assert drained == {"h1": 40}, "a backend of weight 0 takes nothing"


async def test_path_header_query_and_method_matches(plane: Plane, web) -> None:
    def matching(name: str, to: str, **kw: object) -> proxy.HTTPRoute:
        return proxy.HTTPRoute(
            name=name,
            match=proxy.RouteMatch(**kw),  # type: ignore[arg-type]
            backends=(proxy.WeightedCluster(cluster=to),),
        )

    regex = proxy.ValueMatchKind.REGEX
    cfg = config(
        [
            matching("regex", "h1", path=proxy.PathMatch(
                kind=proxy.PathMatchKind.REGEX, value="/items/[0-9]+")),
            matching("exact", "h2", path=proxy.PathMatch(
                kind=proxy.PathMatchKind.EXACT, value="/exact")),
            # A header sent on several lines matches when one line does (Envoy 1.40; the IR's
            # HeaderMatch docstring says comma-joined, which Envoy no longer does).
            matching("lines", "h1", headers=(proxy.HeaderMatch(name="x-multi", value="b"),)),
            matching(
                "canary", "h1",
                headers=(
                    proxy.HeaderMatch(name="x-canary", value="yes"),
                    proxy.HeaderMatch(name="x-version", value="v[0-9]+", kind=regex),
                ),
            ),
            matching(
                "query", "h2",
                query_params=(proxy.QueryParamMatch(name="variant", value="b"),),
                method="GET",
            ),
            matching("deletes", "h2", method="DELETE"),
            matching("rest", "h0"),
        ],
        web,
    )  # fmt: skip
    await plane.apply(cfg)
    addr = irs.address(cfg)

    async def backend(path: str, extra: str = "", method: str = "GET") -> str:
        raw = scenarios.get(path, HOST, extra).replace(b"GET ", method.encode() + b" ", 1)
        status, headers, _ = await scenarios.http_request(addr, raw)
        assert status == 200, (path, extra, method)
        return headers["x-backend"]

    assert await backend("/", "x-canary: yes\r\nx-version: v12\r\n") == "h1"
    # Every condition must hold, values compare case-sensitively, a regex matches the whole value.
    assert await backend("/", "x-canary: yes\r\n") == "h0"
    assert await backend("/", "x-canary: YES\r\nx-version: v1\r\n") == "h0"
    assert await backend("/", "x-canary: yes\r\nx-version: v1-beta\r\n") == "h0"
    # A path regex matches the whole path, never the query string; an exact path is exact.
    assert await backend("/items/12") == "h1"
    assert await backend("/items/12?page=3") == "h1"
    assert await backend("/items/12/x") == "h0"
    assert await backend("/x/items/12") == "h0"
    assert await backend("/exact?q=1") == "h2"
    assert await backend("/exact/") == "h0"
    assert await backend("/", "x-multi: a\r\nx-multi: b\r\n") == "h1"
    assert await backend("/", "x-multi: b\r\nx-multi: a\r\n") == "h1"
    # One line is one value, commas and all.
    assert await backend("/", "x-multi: a,b\r\n") == "h0"
    assert await backend("/x?variant=b") == "h2"
    assert await backend("/x?page=2&variant=b") == "h2"
    assert await backend("/x?variant=bb") == "h0"
    # The first occurrence of a parameter counts.
    assert await backend("/x?variant=b&variant=a") == "h2"
    assert await backend("/x?variant=a&variant=b") == "h0"
    assert await backend("/x?Variant=b") == "h0"
    assert await backend("/x?variant=b", method="POST") == "h0"
    assert await backend("/x", method="DELETE") == "h2"


async def test_header_edits_both_ways(plane: Plane, web) -> None:
    cfg = config(
        [
            route(
                "edited",
                request_headers=proxy.HeaderModifier(
                    set=(("x-tenant", "a"),), add=(("x-trace", "kubelb"),), remove=("x-debug",)
                ),
                response_headers=proxy.HeaderModifier(
                    set=(("x-backend", "hidden"),),
                    add=(("x-served-by", "kubelb"),),
                    remove=("x-seen-xff",),
                ),
            )
        ],
        web[:1],
    )
    await plane.apply(cfg)
    extra = "x-tenant: z\r\nx-trace: client\r\nx-debug: 1\r\n"
    status, headers, _ = await scenarios.http_request(
        irs.address(cfg), scenarios.get("/", HOST, extra)
    )
    assert status == 200
    seen = web[0].requests[-1].headers
    assert seen["x-tenant"] == "a"
    assert [v.strip() for v in seen["x-trace"].split(",")] == ["client", "kubelb"]
    assert "x-debug" not in seen
    assert headers["x-backend"] == "hidden"
    assert headers["x-served-by"] == "kubelb"
    assert "x-seen-xff" not in headers


async def test_mirror_gets_a_copy_and_its_answer_is_dropped(plane: Plane, web) -> None:
    cfg = config([route("mirrored", mirrors=(proxy.Mirror(cluster="h1"),))], web[:2])
    await plane.apply(cfg)
    status, headers, _ = await scenarios.http_request(
        irs.address(cfg), scenarios.get("/copy?x=1", HOST)
    )
    assert (status, headers["x-backend"]) == (200, "h0")

    async def mirrored() -> bool:
        return any(r.target == "/copy?x=1" for r in web[1].requests)

    await until(mirrored, seconds=15, what="the mirror receives the copy")
    copy = next(r for r in web[1].requests if r.target == "/copy?x=1")
    assert copy.headers["host"] == HOST, "the copy keeps the request's Host"


async def test_fixed_status_and_timeouts(plane: Plane, web) -> None:
    # The backend answers `/slow/S` after S seconds; the rewrites put each route's requests there.
    slow = rewrite(PREFIX, "/slow")
    cfg = config(
        [
            proxy.HTTPRoute(
                name="broken",
                match=proxy.RouteMatch(path=proxy.PathMatch(value="/broken")),
                direct_status=500,
                response_headers=proxy.HeaderModifier(set=(("x-why", "invalid-backends"),)),
            ),
            route("attempt", "/attempt", rewrite=slow, backend_timeout_seconds=0.5),
            route("whole", "/whole", rewrite=slow, timeout_seconds=0.5),
            route("rest", timeout_seconds=0),
        ],
        web[:1],
    )
    await plane.apply(cfg)
    addr = irs.address(cfg)

    async def status_of(path: str) -> int:
        return (await scenarios.http_request(addr, scenarios.get(path, HOST)))[0]

    status, headers, _ = await scenarios.http_request(addr, scenarios.get("/broken", HOST))
    assert (status, headers.get("x-why")) == (500, "invalid-backends")
    assert web[0].requests == [], "a fixed answer reaches no backend"
    assert await status_of("/attempt/0") == 200
    assert await status_of("/attempt/5") == 504
    assert await status_of("/whole/5") == 504
    # Timeout 0 is none: an answer slower than the other routes' limits still arrives.
    assert await status_of("/slow/1") == 200


async def test_grpc_method_and_service_routes_over_http2_upstreams(plane: Plane) -> None:
    """A GRPCRoute's shape: a method is an exact path, a service a segment prefix; the upstreams
    speak h2c only (a gRPC server), so the cluster must be HTTP/2."""

    async def serve(name: str) -> tuple[grpc.aio.Server, int]:
        async def say(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return name.encode() + b"|" + request

        handlers = {m: grpc.unary_unary_rpc_method_handler(say) for m in ("Say", "Shout")}
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Echo", handlers),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    servers = [await serve("g0"), await serve("g1")]
    try:
        h2 = proxy.UpstreamProtocol.HTTP2
        cfg = proxy.ProxyConfig(
            node_id="test",
            listeners=(
                proxy.Listener(
                    name="grpc", address="127.0.0.1", port=backends.free_port(),
                    protocol=proxy.Protocol.HTTP,
                    virtual_hosts=(proxy.VirtualHost(name="*", domains=("*",), routes=(
                        proxy.HTTPRoute(
                            name="shout",
                            match=proxy.RouteMatch(path=proxy.PathMatch(
                                kind=proxy.PathMatchKind.EXACT, value="/test.Echo/Shout")),
                            backends=(proxy.WeightedCluster(cluster="g1"),),
                        ),
                        proxy.HTTPRoute(
                            name="echo",
                            match=proxy.RouteMatch(path=proxy.PathMatch(value="/test.Echo")),
                            backends=(proxy.WeightedCluster(cluster="g0"),),
                        ),
                    )),),
                ),
            ),
            clusters=tuple(
                proxy.Cluster(
                    name=f"g{i}", protocol=proxy.Protocol.HTTP, upstream_protocol=h2,
                    endpoints=(proxy.Endpoint(address="127.0.0.1", port=port),),
                )
                for i, (_, port) in enumerate(servers)
            ),
        )  # fmt: skip
        await plane.apply(cfg)
        async with grpc.aio.insecure_channel("{}:{}".format(*irs.address(cfg))) as channel:

            async def call(method: str) -> bytes:
                rpc = channel.unary_unary(f"/test.Echo/{method}")
                answer: bytes = await rpc(b"hi", timeout=10)
                return answer

            assert await call("Say") == b"g0|hi"
            assert await call("Shout") == b"g1|hi"
    finally:
        for server, _ in servers:
            await server.stop(None)
