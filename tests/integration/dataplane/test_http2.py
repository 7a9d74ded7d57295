"""HTTP/2 (h2c) clients on the built-in data plane, with a raw `h2` client: the proxy's own
answers per stream, HTTP/1 clusters refused, and HTTP/1.1 still served on the same listener."""

from __future__ import annotations

import asyncio

import h2.config
import h2.connection
import h2.events
import pytest

from kubelb.ir import proxy
from tests.integration.dataplane import backends, irs, l7, scenarios

pytestmark = pytest.mark.integration


async def h2_get(
    addr: scenarios.Address,
    requests: list[tuple[str, str]],
    extra: list[tuple[str, str]] | None = None,
) -> list[dict[str, str]]:
    """Each (authority, path) as a GET (with the `extra` headers) on its own stream of one
    connection; the response headers of each, in order."""
    reader, writer = await asyncio.open_connection(*addr)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
    conn.initiate_connection()
    ids = []
    for authority, path in requests:
        sid = conn.get_next_available_stream_id()
        ids.append(sid)
        conn.send_headers(
            sid,
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", authority),
                (":path", path),
                *(extra or []),
            ],
            end_stream=True,
        )
    writer.write(conn.data_to_send())
    answers: dict[int, dict[str, str]] = {}
    ended: set[int] = set()
    try:
        while len(ended) < len(ids):
            data = await reader.read(65536)
            assert data, "the proxy closed the connection"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    answers[ev.stream_id] = dict(ev.headers)  # type: ignore[arg-type]
                elif isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset):
                    ended.add(ev.stream_id)
            writer.write(conn.data_to_send())
    finally:
        writer.close()
    return [answers.get(sid, {}) for sid in ids]


async def test_local_answers_and_refusals_per_stream(start_dataplane):
    web = await backends.HTTPBackend("h0").start()
    try:
        stamp = proxy.HeaderModifier(set=(("x-route", "yes"),))
        config = irs.l7(
            [
                (
                    "a.test",
                    [
                        l7.route("fixed", path="/fixed", direct_status=418, response_headers=stamp),
                        l7.route(
                            "old",
                            path="/old",
                            redirect=proxy.Redirect(
                                path=proxy.PathRewrite(
                                    kind=proxy.PathRewriteKind.PREFIX, value="/new"
                                ),
                                status_code=301,
                            ),
                        ),
                        l7.route("http1", path="/", backends=irs.to("c0")),
                    ],
                ),
            ],
            {"c0": [web]},
        )
        await start_dataplane(config)
        addr = irs.address(config)
        answers = await h2_get(
            addr,
            [("a.test", "/fixed"), ("a.test:81", "/old/x?q"), ("a.test", "/"), ("b.test", "/")],
        )
        assert [a.get(":status") for a in answers] == ["418", "301", "502", "404"]
        assert answers[0]["x-route"] == "yes"
        assert answers[1]["location"] == "http://a.test:81/new/x?q"
        # The listener still speaks HTTP/1.1 to other clients.
        status, headers, _ = await scenarios.http_request(addr, scenarios.get("/", "a.test"))
        assert (status, headers["x-backend"]) == (200, "h0")
        assert [r.version for r in web.requests] == ["HTTP/1.1"]
    finally:
        await web.stop()


async def test_header_count_limit_answers_431_per_stream(start_dataplane):
    config = irs.l7(
        [l7.route("fixed", direct_status=204)], {},
        options=proxy.HTTPOptions(max_request_headers_count=10),
    )  # fmt: skip
    await start_dataplane(config)
    addr = irs.address(config)
    within = [(f"x-h{i}", "v") for i in range(10)]
    too_many = [(f"x-h{i}", "v") for i in range(11)]
    assert [a.get(":status") for a in await h2_get(addr, [("a.test", "/")], within)] == ["204"]
    assert [a.get(":status") for a in await h2_get(addr, [("a.test", "/")], too_many)] == ["431"]


async def test_an_idle_connection_is_closed_after_the_idle_timeout(start_dataplane):
    config = irs.l7(
        [l7.route("fixed", direct_status=204)], {},
        options=proxy.HTTPOptions(idle_timeout_seconds=0.3),
    )  # fmt: skip
    await start_dataplane(config)
    addr = irs.address(config)
    assert [a.get(":status") for a in await h2_get(addr, [("a.test", "/")])] == ["204"]
    reader, writer = await asyncio.open_connection(*addr)
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    terminated = False
    try:
        while data := await reader.read(65536):
            terminated = terminated or any(
                isinstance(ev, h2.events.ConnectionTerminated) for ev in conn.receive_data(data)
            )
    finally:
        writer.close()
    assert terminated, "a GOAWAY before the close"
