import aiohttp
import prometheus_client
import pytest

from kubelb.observe import server


@pytest.mark.parametrize(
    ("address", "expected"),
    [(":8081", ("", 8081)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:9", ("::1", 9))],
)
def test_parse_address(address, expected):
    assert server.parse_address(address) == expected


@pytest.mark.parametrize("address", ["8081", "host:http", "127.0.0.1:70000"])
def test_parse_address_errors(address):
    with pytest.raises(ValueError, match="address"):
        server.parse_address(address)


async def test_probes_and_metrics_over_a_real_socket():
    ready = {"dataplane": False}
    readiness = server.Readiness()
    readiness.add("dataplane", lambda: ready["dataplane"])
    readiness.add("broken", lambda: 1 / 0 == 0)
    registry = prometheus_client.CollectorRegistry()
    prometheus_client.Counter("kubelb_test_total", "test", registry=registry).inc()
    srv = server.HTTPServer(
        "admin",
        "127.0.0.1:0",
        [*server.probe_routes(readiness), *server.metrics_routes(registry)],
    )
    await srv.start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/healthz") as r:
                assert r.status == 200
            async with s.get(base + "/readyz") as r:
                assert r.status == 503
                assert await r.text() == "not ready: dataplane, broken\n"
            ready["dataplane"] = True
            del readiness.checks["broken"]
            async with s.get(base + "/readyz") as r:
                assert r.status == 200
            async with s.get(base + "/metrics") as r:
                assert "kubelb_test_total 1.0" in await r.text()
    finally:
        await srv.stop()
