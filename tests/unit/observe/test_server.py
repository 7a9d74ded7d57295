import errno
import socket

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


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


async def test_an_empty_host_listens_on_every_interface():
    srv = server.HTTPServer("probes", ":0", [])
    await srv.start()
    try:
        # 127.0.0.2 is on loopback but not 127.0.0.1: only a wildcard socket answers there.
        assert accepts("127.0.0.1", srv.port)
        assert accepts("127.0.0.2", srv.port)
    finally:
        await srv.stop()


async def test_a_loopback_host_listens_on_that_address_only():
    srv = server.HTTPServer("admin", "127.0.0.1:0", [])
    await srv.start()
    try:
        assert accepts("127.0.0.1", srv.port)
        assert not accepts("127.0.0.2", srv.port)
    finally:
        await srv.stop()


async def test_a_port_in_use_is_a_bind_error_naming_server_and_address():
    with socket.create_server(("0.0.0.0", 0)) as holder:
        port = holder.getsockname()[1]
        srv = server.HTTPServer("metrics", f":{port}", [])
        with pytest.raises(server.BindError) as caught:
            await srv.start()
    assert str(caught.value) == f"metrics cannot listen on :{port}: Address already in use"
    await srv.stop()  # nothing left to stop


def test_bind_error_reports_what_binding_says():
    assert server.bind_error("127.0.0.1", 0) is None
    with socket.create_server(("127.0.0.1", 0)) as holder:
        error = server.bind_error("", holder.getsockname()[1])
    assert error is not None
    assert error.errno == errno.EADDRINUSE


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [("", 8081, ":8081 (all interfaces)"), ("::1", 9, "[::1]:9"), ("10.0.0.1", 80, "10.0.0.1:80")],
)
def test_format_address(host, port, text):
    assert server.format_address(host, port) == text
