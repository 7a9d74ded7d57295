"""Layer 7 routes on the built-in data plane with real sockets: matches, weights, local
answers, rewrites and header edits, mirrors, timeouts (scenarios shared with the
cross-data-plane suite), and what only the Python data plane promises exactly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, l7, scenarios

pytestmark = pytest.mark.integration


@pytest.fixture
async def web() -> AsyncIterator[list[backends.HTTPBackend]]:
    servers = [await backends.HTTPBackend(f"h{i}").start() for i in range(3)]
    yield servers
    for s in servers:
        await s.stop()


@pytest.fixture
def apply(start_dataplane):
    async def serve(config: proxy.ProxyConfig) -> None:
        dp = await start_dataplane(config)
        assert dp.config_errors == []

    return serve


async def test_matches(apply, web):
    await l7.matches(apply, web)


async def test_weights_are_followed_exactly(apply, web):
    await l7.weights(apply, web, exact=True)


async def test_redirects_and_fixed_statuses(apply, web):
    await l7.local_answers(apply, web)


async def test_rewrites_and_header_edits(apply, web):
    await l7.rewrites_and_header_edits(apply, web)


async def test_mirrors(apply, web):
    await l7.mirrors(apply, web)


async def test_route_timeouts(apply, web):
    await l7.timeouts(apply, web)


async def test_the_mirror_keeps_the_requests_host(apply, web):
    config = irs.l7(
        [l7.route("m", backends=irs.to("c0"), mirrors=(proxy.Mirror(cluster="c1"),))],
        {"c0": web[:1], "c1": web[1:2]},
    )
    await apply(config)
    await l7.send(irs.address(config), "GET", "/x", host="a.test:8080")
    await l7._until(lambda: bool(web[1].requests), "the copy reaches the mirror")
    assert web[1].requests[0].headers["host"] == "a.test:8080"


class Silent:
    """Accepts, reads the request, never answers."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> Silent:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                self.received += data

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.transport.abort()
        await self._server.wait_closed()


async def test_a_mirror_that_never_answers_never_delays_the_request(apply, web):
    silent = await Silent().start()
    try:
        config = irs.l7(
            [l7.route("m", backends=irs.to("c0"), mirrors=(proxy.Mirror(cluster="c1"),))],
            {"c0": web[:1], "c1": [silent]},
        )
        await apply(config)
        addr = irs.address(config)
        for i in range(3):
            status, headers, _ = await l7.send(addr, "GET", f"/r{i}")
            assert (status, headers["x-backend"]) == (200, "h0")
        await l7._until(lambda: silent.received.count(b"GET /r") == 3, "three copies arrive")
    finally:
        await silent.stop()


async def test_a_local_answer_drops_the_request_body_and_serves_the_next_request(apply, web):
    config = irs.l7(
        [l7.route("fixed", path="/fixed", direct_status=204),
         l7.route("rest", backends=irs.to("c0"))],
        {"c0": web[:1]},
    )  # fmt: skip
    await apply(config)
    addr = irs.address(config)
    body = b"x" * 200_000
    reader, writer = await asyncio.open_connection(*addr)
    try:
        writer.write(
            f"POST /fixed HTTP/1.1\r\nhost: a\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
            + scenarios.get("/after")
        )
        assert (await scenarios.read_response(reader))[0] == 204
        status, headers, _ = await scenarios.read_response(reader)
        assert (status, headers["x-backend"]) == (200, "h0")
    finally:
        writer.close()
    assert [r.target for r in web[0].requests] == ["/after"]


async def test_weight_shares_hold_per_client_with_source_ip_persistence(start_dataplane, web):
    config = irs.l7(
        [l7.route("split", backends=irs.to(("c0", 1), ("c1", 1)))],
        {"c0": web[:1], "c1": web[1:2]}, source_ip_persistence=True,
    )  # fmt: skip
    await start_dataplane(config)
    addr = irs.address(config)
    chosen = {}
    for i in range(2, 22):
        ip = f"127.0.0.{i}"
        names = set()
        for _ in range(3):
            reader, writer = await asyncio.open_connection(*addr, local_addr=(ip, 0))
            try:
                names.add(
                    l7.served_by(await scenarios.http_request(
                        addr, scenarios.get("/"), reader_writer=(reader, writer)))
                )  # fmt: skip
            finally:
                writer.close()
        assert len(names) == 1, (ip, names)
        chosen[ip] = names.pop()
    assert set(chosen.values()) == {"h0", "h1"}
