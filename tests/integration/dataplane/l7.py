"""Layer 7 scenarios against any data plane: each builds its IR from the backends it gets, has
it served by `apply`, and asserts what clients and backends observe. The built-in data plane's
tests (tests/integration/dataplane/test_l7.py) and the cross-data-plane suite
(tests/integration/dataplanes/test_l7.py) run the same functions.
"""

from __future__ import annotations

import asyncio
import collections
import typing
from collections.abc import Awaitable, Callable, Sequence

import grpc
import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios

Apply = Callable[[proxy.ProxyConfig], Awaitable[None]]
Web = Sequence[backends.HTTPBackend]

PREFIX = proxy.PathMatchKind.PREFIX
EXACT = proxy.PathMatchKind.EXACT
REGEX = proxy.PathMatchKind.REGEX


def route(name: str, *, path: str = "/", kind: proxy.PathMatchKind = PREFIX,
          **fields: object) -> proxy.HTTPRoute:  # fmt: skip
    return proxy.HTTPRoute(
        name=name,
        match=proxy.RouteMatch(
            path=proxy.PathMatch(kind=kind, value=path),
            headers=fields.pop("headers", ()),  # type: ignore[arg-type]
            query_params=fields.pop("query", ()),  # type: ignore[arg-type]
            method=fields.pop("method", None),  # type: ignore[arg-type]
        ),
        **fields,  # type: ignore[arg-type]
    )


def served_by(response: tuple[int, dict[str, str], bytes]) -> str:
    status, headers, _ = response
    return headers.get("x-backend", str(status))


async def send(addr: scenarios.Address, method: str, target: str, host: str = "a.test",
               extra: str = "") -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    raw = f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n{extra}\r\n".encode()
    return await scenarios.http_request(addr, raw)


async def matches(apply: Apply, web: Web) -> None:
    """Path exact / prefix (whole segments) / regex, headers, query parameters and method; the
    first route whose every condition holds answers."""
    h = proxy.HeaderMatch
    q = proxy.QueryParamMatch
    config = irs.l7(
        [
            route("exact", path="/exact", kind=EXACT, backends=irs.to("c0")),
            route("regex", path=r"/items/[0-9]+", kind=REGEX, backends=irs.to("c1")),
            route(
                "header",
                path="/h",
                backends=irs.to("c0"),
                headers=(
                    h(name="x-env", value="canary"),
                    h(name="x-ver", value="v[0-9]+", kind=proxy.ValueMatchKind.REGEX),
                ),
            ),
            route(
                "query",
                path="/q",
                backends=irs.to("c1"),
                query=(
                    q(name="debug", value="on"),
                    q(name="id", value="[a-z]+", kind=proxy.ValueMatchKind.REGEX),
                ),
            ),
            route("method", path="/m", method="POST", backends=irs.to("c0")),
            route("prefix", path="/pre", backends=irs.to("c1")),
            route("rest", backends=irs.to("c2")),
        ],
        {"c0": web[:1], "c1": web[1:2], "c2": web[2:3]},
    )
    await apply(config)
    addr = irs.address(config)
    cases = [
        ("GET", "/exact", "", "h0"),
        ("GET", "/exact?x=1", "", "h0"),
        ("GET", "/exact/", "", "h2"),
        ("GET", "/items/42", "", "h1"),
        ("GET", "/items/42?page=2", "", "h1"),
        ("GET", "/items/4x", "", "h2"),
        ("GET", "/items/42/more", "", "h2"),
        ("GET", "/h", "x-env: canary\r\nx-ver: v2\r\n", "h0"),
        ("GET", "/h", "X-Env: canary\r\nx-ver: v10\r\n", "h0"),
        ("GET", "/h", "x-env: Canary\r\nx-ver: v2\r\n", "h2"),
        ("GET", "/h", "x-env: canary\r\n", "h2"),
        ("GET", "/h", "x-env: canary\r\nx-ver: v2x\r\n", "h2"),
        # A header on several lines holds when one line does, each line compared whole.
        ("GET", "/h", "x-env: other\r\nx-env: canary\r\nx-ver: v2\r\n", "h0"),
        ("GET", "/h", "x-env: canary,other\r\nx-ver: v2\r\n", "h2"),
        ("GET", "/q?debug=on&id=abc", "", "h1"),
        ("GET", "/q?id=abc&debug=on", "", "h1"),
        # Values compare as sent: Envoy does not percent-decode them for matching.
        ("GET", "/q?id=abc&debug=o%6E", "", "h2"),
        ("GET", "/q?debug=on&debug=off&id=abc", "", "h1"),
        ("GET", "/q?debug=off&debug=on&id=abc", "", "h2"),
        ("GET", "/q?debug=on&id=ABC", "", "h2"),
        ("GET", "/q?debug=on", "", "h2"),
        ("POST", "/m", "content-length: 0\r\n", "h0"),
        ("GET", "/m", "", "h2"),
        ("GET", "/pre", "", "h1"),
        ("GET", "/pre/x", "", "h1"),
        ("GET", "/pre?x", "", "h1"),
        ("GET", "/prefix", "", "h2"),
    ]
    seen = [(m, t, x, served_by(await send(addr, m, t, extra=x))) for m, t, x, _ in cases]
    wrong = [(got, want) for got, want in zip(seen, cases, strict=True) if got != want]
    assert not wrong, wrong


async def weights(apply: Apply, web: Web, *, exact: bool) -> None:
    """Backends share requests by weight; weight 0 gets none. `exact`: the data plane
    follows the weights exactly over each cycle (Python) rather than at random (Envoy)."""
    config = irs.l7(
        [route("split", backends=irs.to(("c0", 3), ("c1", 1), ("c2", 0)))],
        {"c0": web[:1], "c1": web[1:2], "c2": web[2:3]},
    )
    await apply(config)
    addr = irs.address(config)
    rw = await asyncio.open_connection(*addr)
    try:
        seen = collections.Counter(
            [served_by(await scenarios.http_request(addr, scenarios.get("/"), reader_writer=rw))
             for _ in range(400)]
        )  # fmt: skip
    finally:
        rw[1].close()
    assert set(seen) == {"h0", "h1"}, seen
    if exact:
        assert seen == {"h0": 300, "h1": 100}
    else:
        # 300 expected, standard deviation 8.7: far outside this band only when broken.
        assert 240 <= seen["h0"] <= 360, seen


async def local_answers(apply: Apply, web: Web, *, envoy: bool = False) -> None:
    """Redirects (Gateway API's Location rules) and fixed statuses, answered without a backend
    and without closing the connection; the route's response header edits apply to them.
    `envoy`: a scheme change names the default port when the Host named one (documented)."""
    rewrite = proxy.PathRewrite
    stamp = proxy.HeaderModifier(set=(("x-route", "moved"),))
    config = irs.l7(
        [
            route(
                "to-https",
                path="/secure",
                redirect=proxy.Redirect(scheme="https"),
                response_headers=stamp,
            ),
            route(
                "moved",
                path="/old",
                redirect=proxy.Redirect(
                    hostname="new.test",
                    port=8080,
                    status_code=301,
                    path=rewrite(kind=proxy.PathRewriteKind.PREFIX, value="/new"),
                ),
            ),
            route(
                "full",
                path="/full",
                redirect=proxy.Redirect(
                    path=rewrite(kind=proxy.PathRewriteKind.FULL, value="/landing"), status_code=308
                ),
            ),
            route("gone", path="/gone", direct_status=410),
            route("broken", path="/broken", direct_status=500, response_headers=stamp),
            route("rest", backends=irs.to("c0")),
        ],
        {"c0": web[:1]},
    )
    await apply(config)
    addr = irs.address(config)
    reader, writer = await asyncio.open_connection(*addr)
    try:

        async def ask(target: str, host: str = "a.test:8000") -> tuple[int, dict[str, str]]:
            status, headers, _ = await scenarios.http_request(
                addr, scenarios.get(target, host), reader_writer=(reader, writer)
            )
            return status, headers

        status, headers = await ask("/secure/x?q=1")
        assert (status, headers["location"], headers["x-route"]) == (
            302, f"https://a.test{':443' if envoy else ''}/secure/x?q=1", "moved"
        )  # fmt: skip
        status, headers = await ask("/old/deep/path?a=b")
        assert (status, headers["location"]) == (301, "http://new.test:8080/new/deep/path?a=b")
        status, headers = await ask("/old", host="a.test")
        assert (status, headers["location"]) == (301, "http://new.test:8080/new")
        status, headers = await ask("/full/x?k=v", host="a.test")
        assert (status, headers["location"]) == (308, "http://a.test/landing?k=v")
        assert (await ask("/gone"))[0] == 410
        status, headers = await ask("/broken")
        assert (status, headers["x-route"]) == (500, "moved")
        # The same connection still serves forwarded requests.
        status, headers = await ask("/fine")
        assert (status, headers["x-backend"]) == (200, "h0")
    finally:
        writer.close()


async def rewrites_and_header_edits(apply: Apply, web: Web) -> None:
    """The backend sees the rewritten host and path and the request header edits; the client
    sees the response header edits."""
    backend = web[0]
    config = irs.l7(
        [
            route(
                "prefix",
                path="/api",
                backends=irs.to("c0"),
                rewrite=proxy.URLRewrite(
                    hostname="internal.test",
                    path=proxy.PathRewrite(kind=proxy.PathRewriteKind.PREFIX, value="/v2"),
                ),
            ),
            route(
                "strip",
                path="/strip",
                backends=irs.to("c0"),
                rewrite=proxy.URLRewrite(
                    path=proxy.PathRewrite(kind=proxy.PathRewriteKind.PREFIX, value="/")
                ),
            ),
            route(
                "full",
                path="/full",
                backends=irs.to("c0"),
                rewrite=proxy.URLRewrite(
                    path=proxy.PathRewrite(kind=proxy.PathRewriteKind.FULL, value="/one")
                ),
            ),
            route(
                "edits",
                path="/edits",
                backends=irs.to("c0"),
                request_headers=proxy.HeaderModifier(
                    set=(("x-set", "new"),), add=(("x-add", "2"),), remove=("x-gone",)
                ),
                response_headers=proxy.HeaderModifier(
                    set=(("x-backend", "edited"),),
                    add=(("x-extra", "yes"),),
                    remove=("x-seen-xff",),
                ),
            ),
        ],
        {"c0": web[:1]},
    )
    await apply(config)
    addr = irs.address(config)

    async def upstream_view(target: str, extra: str = "") -> backends.HTTPRequest:
        before = len(backend.requests)
        status, _, _ = await send(addr, "GET", target, extra=extra)
        assert status == 200, target
        return backend.requests[before]

    seen = await upstream_view("/api/items?x=1")
    assert (seen.target, seen.headers["host"]) == ("/v2/items?x=1", "internal.test")
    assert (await upstream_view("/api")).target == "/v2"
    assert (await upstream_view("/strip/a/b")).target == "/a/b"
    assert (await upstream_view("/strip")).target == "/"
    assert (await upstream_view("/full/x?k=v")).target == "/one?k=v"
    seen = await upstream_view("/edits", "x-set: old\r\nx-gone: 1\r\nx-add: 1\r\nx-keep: k\r\n")
    assert seen.headers["x-set"] == "new"
    assert "x-gone" not in seen.headers
    assert [v.strip() for v in seen.headers["x-add"].split(",")] == ["1", "2"]
    assert (seen.headers["x-keep"], seen.headers["host"]) == ("k", "a.test")
    status, headers, body = await send(addr, "GET", "/edits")
    assert (status, headers["x-backend"], headers["x-extra"]) == (200, "edited", "yes")
    assert "x-seen-xff" not in headers
    assert body == b"h0 /edits"


async def mirrors(apply: Apply, web: Web) -> None:
    """Every request (percent 100) is copied to the mirror cluster; the client gets the main
    backend's answer; a mirror at 0 % gets nothing."""
    main, mirror, never = web[0], web[1], web[2]
    config = irs.l7(
        [route("m", backends=irs.to("c0"), mirrors=(
            proxy.Mirror(cluster="c1"), proxy.Mirror(cluster="c2", percent=0)))],
        {"c0": [main], "c1": [mirror], "c2": [never]},
    )  # fmt: skip
    await apply(config)
    addr = irs.address(config)
    body = b"payload" * 100
    raw = (
        f"POST /copy?n=1 HTTP/1.1\r\nhost: a.test\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    status, headers, answer = await scenarios.http_request(addr, raw)
    assert (status, headers["x-backend"], answer) == (200, "h0", b"h0 /copy?n=1")
    status, headers, _ = await send(addr, "GET", "/second")
    assert (status, headers["x-backend"]) == (200, "h0")
    await _until(lambda: len(mirror.requests) >= 2, "both requests reach the mirror")
    copies = sorted(mirror.requests, key=lambda r: r.target)
    assert [(r.method, r.target, r.body) for r in copies] == [
        ("POST", "/copy?n=1", body), ("GET", "/second", b"")
    ]  # fmt: skip
    assert copies[0].headers["host"] == "a.test"
    assert never.requests == []


async def timeouts(apply: Apply, web: Web) -> None:
    """A route's timeout replaces the listener's (0: none), a backend timeout bounds one
    attempt; expiry answers 504."""
    config = irs.l7(
        [
            route("short", path="/short", backends=irs.to("c0"), timeout_seconds=0.5),
            route("none", path="/none", backends=irs.to("c0"), timeout_seconds=0),
            # The whole request may take 10 s: only the attempt's limit can answer 504.
            route(
                "attempt",
                path="/attempt",
                backends=irs.to("c0"),
                timeout_seconds=10,
                backend_timeout_seconds=0.5,
            ),
            route("default", backends=irs.to("c0")),
        ],
        {"c0": web[:1]},
        options=proxy.HTTPOptions(request_timeout_seconds=1.5),
    )
    await apply(config)
    addr = irs.address(config)
    assert (await send(addr, "GET", "/short/slow/5"))[0] == 504
    assert (await send(addr, "GET", "/attempt/slow/5"))[0] == 504
    assert (await send(addr, "GET", "/default/slow/5"))[0] == 504
    assert (await send(addr, "GET", "/none/slow/2"))[0] == 200
    assert (await send(addr, "GET", "/short/fast"))[0] == 200


async def _until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        await asyncio.sleep(0.02)


class GRPCBackend:
    """A real gRPC server (grpcio) without generated code: `/demo.Echo/Unary` answers
    `name:request` with trailing metadata, `/demo.Echo/Stream` streams the request back N times
    (N = first byte), `/demo.Echo/Fail` fails with NOT_FOUND."""

    def __init__(self, name: str, *, tls: tuple[bytes, bytes] | None = None) -> None:
        """`tls`: (private key, certificate chain) PEM to serve over TLS instead of h2c."""
        self.name = name
        self.port = 0
        self.tls = tls
        self._server: typing.Any = None

    async def start(self) -> GRPCBackend:
        async def unary(request: bytes, ctx: typing.Any) -> bytes:
            ctx.set_trailing_metadata((("x-trailer", self.name),))
            return self.name.encode() + b":" + request

        async def stream(request: bytes, ctx: typing.Any) -> typing.AsyncIterator[bytes]:
            for i in range(request[0]):
                yield b"%d:" % i + request[1:]

        async def fail(request: bytes, ctx: typing.Any) -> bytes:
            await ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
            return b""

        handler = grpc.method_handlers_generic_handler(
            "demo.Echo",
            {
                "Unary": grpc.unary_unary_rpc_method_handler(unary),
                "Stream": grpc.unary_stream_rpc_method_handler(stream),
                "Fail": grpc.unary_unary_rpc_method_handler(fail),
            },
        )
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((handler,))
        if self.tls is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            credentials = grpc.ssl_server_credentials([self.tls])
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None


async def grpc_calls(apply: Apply, servers: Sequence[GRPCBackend]) -> None:
    """gRPC through an HTTP listener to HTTP2 clusters: unary with trailing metadata, server
    streaming, an error status, routing by the method's path and the route's response edits
    in the initial metadata."""
    config = irs.l7(
        [
            (
                "grpc.test",
                [
                    route("fail", path="/demo.Echo/Fail", kind=EXACT, backends=irs.to("g1")),
                    route(
                        "echo",
                        path="/demo.Echo",
                        backends=irs.to("g0"),
                        response_headers=proxy.HeaderModifier(add=(("x-edge", "yes"),)),
                    ),
                ],
            ),
        ],
        {"g0": servers[:1], "g1": servers[1:2]},
        upstream_protocol=proxy.UpstreamProtocol.HTTP2,
    )
    await apply(config)
    host, port = irs.address(config)
    async with grpc.aio.insecure_channel(
        f"{host}:{port}", options=[("grpc.default_authority", "grpc.test")]
    ) as channel:
        unary = channel.unary_unary("/demo.Echo/Unary")
        call = unary(b"hello", timeout=10)
        assert await call == b"g0:hello"
        assert ("x-edge", "yes") in tuple(await call.initial_metadata())
        assert ("x-trailer", "g0") in tuple(await call.trailing_metadata())
        assert await call.code() == grpc.StatusCode.OK
        stream = channel.unary_stream("/demo.Echo/Stream")
        got = [m async for m in stream(bytes([50]) + b"x" * 100_000, timeout=10)]
        assert got == [b"%d:" % i + b"x" * 100_000 for i in range(50)]
        failing = channel.unary_unary("/demo.Echo/Fail")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await failing(b"", timeout=10)
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.NOT_FOUND, "no such thing"
        )  # fmt: skip
