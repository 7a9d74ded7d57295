"""Route churn on both data planes: a steady request stream through one route fails nothing while
200 edits of other routes (hosts and paths added, moved, removed, clusters swapped) land on the
same listener."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplanes import traffic
from tests.integration.dataplanes.conftest import Plane, until

pytestmark = pytest.mark.integration

EDITS = 200


@pytest.fixture
async def web() -> AsyncIterator[list[backends.HTTPBackend]]:
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(3)]
    yield servers
    for s in servers:
        await s.stop()


def edit(n: int, web: list[backends.HTTPBackend], port: int) -> proxy.ProxyConfig:
    """The steady route (host example.test, `/` -> h0) plus edit `n` of the others: a host that
    comes and goes, a path that moves between clusters, a route added every tenth edit."""
    other = web[1 + n % 2]
    routes = [
        ("steady", web[:1], ("example.test",), "/"),
        (f"moving-{n % 2}", [other], ("moving.test",), f"/v{n % 7}"),
        ("paths", web[1:], ("example.test",), f"/p{n % 5}"),
    ]
    if n % 3:
        routes.append((f"coming-{n}", [other], (f"host-{n}.test",), "/"))
    routes.extend((f"kept-{k}", web[2:], (f"kept-{k}.test",), "/") for k in range(n // 10))
    return irs.http(routes, port=port)


async def test_editing_other_routes_fails_no_request_of_a_steady_one(
    plane: Plane, web: list[backends.HTTPBackend]
) -> None:
    first = edit(0, web, backends.free_port())
    port = first.listeners[0].port
    addr = irs.address(first)
    await plane.apply(first)
    async with traffic.Loop(addr, clients=4) as loop:
        await until(
            lambda: loop.all_answered_by("h0"), what="every client reaches the steady route"
        )
        for n in range(1, EDITS + 1):
            await plane.apply(edit(n, web, port))
        last = edit(EDITS, web, port)

        async def last_edit_served() -> bool:
            status, headers, _ = await scenarios.http_request(
                addr, scenarios.get("/", host=f"kept-{EDITS // 10 - 1}.test")
            )
            return status == 200 and headers.get("x-backend") == "h2"

        await until(last_edit_served, what="the last edit's newest route answers")
        after = loop.answers()
        await until(lambda: loop.more_answers(after, 40), what="more traffic after the edits")
    served = loop.answers()
    print(f"{plane.kind}: {len(loop.failures)} of {served + len(loop.failures)} requests failed "
          f"across {EDITS} route edits")  # fmt: skip
    assert loop.failures == [], loop.failures[:5]
    assert loop.seen_since(0) == {"h0"}, "the steady route never answered from another cluster"
    assert len(last.listeners[0].virtual_hosts) > EDITS // 10
