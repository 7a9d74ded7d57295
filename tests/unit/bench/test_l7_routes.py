"""The data-plane benchmark's L7 route table: a valid IR whose measured request reaches the
intended route late in its host's list (and near misses do not), the echo backend's answer, and
the check that refuses a proxy answering the measured request wrongly."""

from __future__ import annotations

import asyncio

import pytest

from bench.dataplane import backend, l7, processes
from kubelb.dataplane import routing
from kubelb.ir import proxy


def _config() -> proxy.ProxyConfig:
    ports = {"http": 1001, "tcp": 1002, "bulk": 1003, "l7": 1004}
    return processes.proxy_config(ports, 2000, 2001, {"a": 2002, "b": 2003})


def _route(host: str, target: str, method: bytes, headers: dict[str, str]) -> str | None:
    table = routing.RouteTable(l7.listener(1).virtual_hosts, lambda r: r.name)
    encoded = [(k.encode(), v.encode()) for k, v in headers.items()]
    return table.match(host, target, method, encoded)


def test_the_benchmark_config_is_valid() -> None:
    config = _config()
    assert config.validate() == []
    vhosts = next(li for li in config.listeners if li.name == "l7").virtual_hosts
    assert len(vhosts) == l7.HOSTS
    assert all(len(vh.routes) == l7.ROUTES_PER_HOST for vh in vhosts)


def test_the_table_mixes_every_kind_of_match() -> None:
    routes = l7.routes(0)
    assert {r.match.path.kind for r in routes} == set(proxy.PathMatchKind)
    assert any(r.match.headers for r in routes)
    assert any(r.match.query_params for r in routes)
    assert any(r.match.method for r in routes)
    assert any(r.redirect for r in routes)
    assert any(r.mirrors for r in routes)


def test_the_measured_request_takes_the_measured_route_late_in_its_host() -> None:
    m = l7.MEASURED
    chosen = _route(m.host, m.target, m.method.encode(), dict(m.headers))
    assert chosen == l7.route_name(l7.MEASURED_HOST, l7.MEASURED_ROUTE)
    assert l7.measured_position() >= l7.ROUTES_PER_HOST - 2
    measured = l7.routes(l7.MEASURED_HOST)[l7.measured_position() - 1]
    assert measured.match.headers
    assert measured.request_headers
    assert measured.response_headers
    assert measured.rewrite is not None
    assert len(measured.backends) == 2


@pytest.mark.parametrize(
    ("target", "method", "headers", "route"),
    [
        # Without the header the measured route needs, only the catch-all holds.
        ("/api/v1/orders/12345?page=2", b"GET", {}, "default"),
        ("/api/v1/orders/12345?page=2", b"DELETE", {"x-tenant": "gold"}, "delete"),
        ("/api/v1/orders/12345?debug=1", b"GET", {"x-tenant": "gold"}, "debug"),
        ("/api/v1/orders/12345", b"GET", {"x-tenant": "premium-x"}, "premium"),
        ("/api/v1/orders/12345", b"GET", {"x-canary": "true"}, "canary"),
        ("/api/v2/users/7", b"GET", {"x-tenant": "gold"}, "user"),
        ("/api/v1/orders/export", b"POST", {"x-tenant": "gold"}, "export"),
    ],
)
def test_near_misses_take_other_routes(
    target: str, method: bytes, headers: dict[str, str], route: str
) -> None:
    assert _route(l7.MEASURED.host, target, method, headers) == l7.route_name(
        l7.MEASURED_HOST, route
    )


def test_each_host_routes_to_its_own_clusters() -> None:
    m = l7.MEASURED
    table = routing.RouteTable(l7.listener(1).virtual_hosts, lambda r: r.backends)
    encoded = [(k.encode(), v.encode()) for k, v in m.headers]
    backends = table.match(l7.host_name(3), m.target, b"GET", encoded)
    assert backends is not None
    assert {b.cluster for b in backends} == {l7.cluster_name(3, "a"), l7.cluster_name(3, "b")}
    assert table.match("unknown.bench.test", m.target, b"GET", encoded) is None


def _good_answer() -> tuple[dict[str, str], str]:
    body = l7.echo_body("a", l7.UPSTREAM_TARGET, lambda h: l7.UPSTREAM_HEADERS[h])
    return dict(l7.RESPONSE_HEADERS), body


def test_an_intended_answer_has_no_problems() -> None:
    headers, body = _good_answer()
    assert l7.problems(200, headers, body) == []


@pytest.mark.parametrize(
    "spoil",
    [
        lambda h, b: (404, h, b),
        lambda h, b: (200, h, b.replace("backend=a", "backend=nginx")),
        lambda h, b: (200, h, b.replace(l7.UPSTREAM_TARGET, l7.MEASURED.target)),
        lambda h, b: (200, h, b.replace("x-env=bench", "x-env=")),
        lambda h, b: (200, h, b.replace("x-debug=", "x-debug=1")),
        lambda h, b: (200, {}, b),
        lambda h, b: (200, {**h, l7.BACKEND_ONLY_HEADER: "a"}, b),
    ],
)
def test_a_wrong_answer_is_refused(spoil: object) -> None:
    headers, body = _good_answer()
    status, headers, body = spoil(headers, body)  # type: ignore[operator]
    assert l7.problems(status, headers, body)


async def test_the_fallback_echo_backend_answers_pipelined_requests() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: backend.Echo("b"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /orders/1?page=2 HTTP/1.1\r\nHost: x\r\nX-Env: bench\r\nx-route: orders\r\n\r\n"
            b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        bodies = []
        for _ in range(2):
            head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
            assert head.startswith("http/1.1 200")
            assert f"{l7.BACKEND_ONLY_HEADER}: b" in head
            length = int(head.split("content-length: ")[1].split("\r\n")[0])
            bodies.append(l7.parse_echo((await reader.readexactly(length)).decode()))
        writer.close()
    assert bodies[0] == {"backend": "b", "target": "/orders/1?page=2", "x-debug": "",
                         "x-env": "bench", "x-route": "orders"}  # fmt: skip
    assert bodies[1]["target"] == "/second"
    assert bodies[1]["x-env"] == ""
