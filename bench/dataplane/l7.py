"""The L7 scenario: an HTTP listener with a realistic route table, and the request it measures.

`HOSTS` virtual hosts of `ROUTES_PER_HOST` routes each, mixing Exact, PathPrefix and regex
paths, header, query and method matches, a redirect, a mirror and rewrites, every host with its
own two clusters (both on the two echo backends). The measured request goes to `MEASURED_HOST`
and is answered by `MEASURED_ROUTE`, ninth of its host's ten: on the way both proxies test routes
whose path holds but whose header, query or method does not (a regex among them). The measured
route needs a header match, edits request and response headers, rewrites the path prefix and
splits between two weighted backends.

`check` proves, before anything is measured, that a proxy answers the measured request as
intended: 200 from both backends, the upstream seeing the rewritten path and edited headers, the
client seeing the edited response headers.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from dataclasses import dataclass

from kubelb.ir import proxy

HOSTS = 50
ROUTES_PER_HOST = 10
MEASURED_HOST = 37
MEASURED_ROUTE = "orders"
WEIGHTS = {"a": 70, "b": 30}


@dataclass(frozen=True, slots=True)
class Request:
    host: str
    target: str
    method: str
    headers: tuple[tuple[str, str], ...]


def host_name(i: int) -> str:
    return f"svc-{i:02d}.bench.test"


MEASURED = Request(
    host=host_name(MEASURED_HOST),
    target="/api/v1/orders/12345?page=2",
    method="GET",
    headers=(("x-tenant", "gold"), ("x-debug", "1")),
)
# What the upstream must see and the client must get for MEASURED.
UPSTREAM_TARGET = "/orders/12345?page=2"
UPSTREAM_HEADERS = {"x-env": "bench", "x-route": "orders", "x-debug": ""}
RESPONSE_HEADERS = {"x-served-by": "kubelb-l7"}
# Set by the echo backends, removed by the measured route.
BACKEND_ONLY_HEADER = "x-backend-internal"


def cluster_name(i: int, backend: str) -> str:
    return f"svc-{i:02d}-{backend}"


def route_name(i: int, short: str) -> str:
    return f"h{i:02d}-{short}"


def _prefix(value: str) -> proxy.PathMatch:
    return proxy.PathMatch(kind=proxy.PathMatchKind.PREFIX, value=value)


def _exact(value: str) -> proxy.PathMatch:
    return proxy.PathMatch(kind=proxy.PathMatchKind.EXACT, value=value)


def _regex(value: str) -> proxy.PathMatch:
    return proxy.PathMatch(kind=proxy.PathMatchKind.REGEX, value=value)


def _to(*clusters: tuple[str, int]) -> tuple[proxy.WeightedCluster, ...]:
    return tuple(proxy.WeightedCluster(cluster=c, weight=w) for c, w in clusters)


def routes(i: int) -> tuple[proxy.HTTPRoute, ...]:
    """Host `i`'s routes in match order (the order an IR builder's precedence would give)."""
    a, b = cluster_name(i, "a"), cluster_name(i, "b")
    R, M = proxy.HTTPRoute, proxy.RouteMatch

    def name(short: str) -> str:
        return route_name(i, short)

    return (
        R(name=name("export"), match=M(path=_exact("/api/v1/orders/export"), method="POST"),
          backends=_to((a, 1))),
        R(name=name("user"), match=M(path=_regex(r"/api/v[0-9]+/users/[0-9]+")),
          backends=_to((a, 1))),
        R(name=name("canary"),
          match=M(path=_prefix("/api/v1/orders"),
                  headers=(proxy.HeaderMatch(name="x-canary", value="true"),)),
          backends=_to((b, 1)), mirrors=(proxy.Mirror(cluster=a, percent=10.0),)),
        R(name=name("debug"),
          match=M(path=_prefix("/api"),
                  query_params=(proxy.QueryParamMatch(name="debug", value="1"),)),
          backends=_to((a, 1)), timeout_seconds=5.0),
        R(name=name("premium"),
          match=M(path=_prefix("/api"),
                  headers=(proxy.HeaderMatch(name="x-tenant", value="premium-[a-z]+",
                                             kind=proxy.ValueMatchKind.REGEX),)),
          backends=_to((b, 1))),
        R(name=name("login"), match=M(path=_exact("/login")),
          redirect=proxy.Redirect(scheme="https", status_code=301)),
        R(name=name("static"), match=M(path=_prefix("/static")), backends=_to((a, 1)),
          rewrite=proxy.URLRewrite(path=proxy.PathRewrite(
              kind=proxy.PathRewriteKind.PREFIX, value="/assets"))),
        R(name=name("delete"),
          match=M(path=_regex(r"/api/v1/orders/[0-9]+"), method="DELETE"),
          backends=_to((b, 1))),
        R(name=name(MEASURED_ROUTE),
          match=M(path=_prefix("/api/v1/orders"),
                  headers=(proxy.HeaderMatch(name="x-tenant", value="gold"),)),
          backends=_to((a, WEIGHTS["a"]), (b, WEIGHTS["b"])),
          request_headers=proxy.HeaderModifier(
              set=(("x-env", "bench"),), add=(("x-route", "orders"),), remove=("x-debug",)),
          response_headers=proxy.HeaderModifier(
              set=tuple(RESPONSE_HEADERS.items()), remove=(BACKEND_ONLY_HEADER,)),
          rewrite=proxy.URLRewrite(path=proxy.PathRewrite(
              kind=proxy.PathRewriteKind.PREFIX, value="/orders")),
          timeout_seconds=15.0),
        R(name=name("default"), match=M(path=_prefix("/")), backends=_to((a, 1))),
    )  # fmt: skip


def measured_position() -> int:
    """1-based position of the measured route in its host's list."""
    names = [r.name for r in routes(MEASURED_HOST)]
    return names.index(route_name(MEASURED_HOST, MEASURED_ROUTE)) + 1


def listener(port: int, hosts: int = HOSTS) -> proxy.Listener:
    return proxy.Listener(
        name="l7", address="127.0.0.1", port=port, protocol=proxy.Protocol.HTTP,
        virtual_hosts=tuple(
            proxy.VirtualHost(name=host_name(i), domains=(host_name(i),), routes=routes(i))
            for i in range(hosts)
        ),
    )  # fmt: skip


def clusters(backend_a: int, backend_b: int, hosts: int = HOSTS) -> tuple[proxy.Cluster, ...]:
    ports = {"a": backend_a, "b": backend_b}
    return tuple(
        proxy.Cluster(
            name=cluster_name(i, backend), protocol=proxy.Protocol.HTTP,
            endpoints=(proxy.Endpoint(address="127.0.0.1", port=ports[backend]),),
        )
        for i in range(hosts)
        for backend in ("a", "b")
    )  # fmt: skip


def echo_body(backend: str, target: str, header: Callable[[str], str]) -> str:
    """What an echo backend answers: who it is, the target it got and the headers the measured
    route edits (`header(name)` is "" when absent). `parse_echo` reads it back."""
    fields = [("backend", backend), ("target", target)]
    fields += [(name, header(name)) for name in sorted(UPSTREAM_HEADERS)]
    return "".join(f"{k}={v};" for k, v in fields) + "\n"


def parse_echo(body: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in body.strip().split(";") if part)


def problems(status: int, headers: dict[str, str], body: str) -> list[str]:
    """Why one answer to MEASURED is not the intended one (empty: it is). `headers` lower-case."""
    if status != 200:
        return [f"status {status} (body {body[:200]!r})"]
    found: list[str] = []
    echo = parse_echo(body)
    if echo.get("backend") not in WEIGHTS:
        found.append(f"answered by {echo.get('backend')!r}, not an echo backend: {body[:200]!r}")
    if echo.get("target") != UPSTREAM_TARGET:
        found.append(f"upstream saw {echo.get('target')!r}, not {UPSTREAM_TARGET!r}")
    for name, want in UPSTREAM_HEADERS.items():
        if echo.get(name) != want:
            found.append(f"upstream saw {name}={echo.get(name)!r}, not {want!r}")
    for name, want in RESPONSE_HEADERS.items():
        if headers.get(name) != want:
            found.append(f"client got {name}={headers.get(name)!r}, not {want!r}")
    if BACKEND_ONLY_HEADER in headers:
        found.append(f"client got {BACKEND_ONLY_HEADER}, which the route removes")
    return found


def check(port: int, *, requests: int = 64) -> dict[str, int]:
    """Send MEASURED `requests` times through the proxy on `port`; raise unless every answer is
    the intended one and both weighted backends answered. Returns answers per backend."""
    seen = dict.fromkeys(WEIGHTS, 0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(requests):
            conn.request(MEASURED.method, MEASURED.target,
                         headers={"Host": MEASURED.host, **dict(MEASURED.headers)})  # fmt: skip
            r = conn.getresponse()
            body = r.read().decode("latin-1")
            headers = {k.lower(): v for k, v in r.getheaders()}
            found = problems(r.status, headers, body)
            if found:
                raise RuntimeError(f"L7 route on 127.0.0.1:{port} is wrong: " + "; ".join(found))
            seen[parse_echo(body)["backend"]] += 1
    finally:
        conn.close()
    if not all(seen.values()):
        raise RuntimeError(f"L7 route on 127.0.0.1:{port}: not both backends answered: {seen}")
    return seen
