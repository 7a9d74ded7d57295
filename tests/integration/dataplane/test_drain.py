"""A stopping data plane drains as Envoy does after `/drain_listeners?graceful`: for the drain
period it keeps accepting and serving new connections, requests in flight complete, and only
then are new connections refused (docs/dataplane-differences.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml

from kubelb.dataplane import runtime
from kubelb.ir import codec, proxy
from tests.integration.dataplane import backends, irs, scenarios
from tests.integration.dataplane.conftest import eventually

pytestmark = pytest.mark.integration

# Long enough for the steps inside the drain to run on a loaded machine; every step waits on
# its condition, and the period only bounds the test's length.
DRAIN_SECONDS = 6.0


@pytest.fixture
async def served():
    """A TCP listener and an HTTP listener, each in front of its own backend."""
    tcp_server = await backends.TCPBackend("t0").start()
    web = await backends.HTTPBackend("h0").start()
    tcp = irs.l4(proxy.Protocol.TCP, [tcp_server])
    http = irs.http([("web", [web], (), "/")])
    config = proxy.ProxyConfig(
        node_id="test",
        listeners=tcp.listeners + http.listeners,
        clusters=tcp.clusters + http.clusters,
    )
    yield config
    await tcp_server.stop()
    await web.stop()


class InFlight:
    """A TCP connection past its greeting and an HTTP request whose body is half sent."""

    async def open(self, config: proxy.ProxyConfig) -> InFlight:
        self.tcp = await asyncio.open_connection(*irs.address(config, 0))
        assert await self.tcp[0].readline() == b"t0\n"
        self.http = await asyncio.open_connection(*irs.address(config, 1))
        self.http[1].write(
            b"POST /echo HTTP/1.1\r\nhost: example.test\r\ncontent-length: 10\r\n\r\nhello"
        )
        await self.http[1].drain()
        return self

    async def complete(self) -> None:
        reader, writer = self.tcp
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        writer.close()
        reader, writer = self.http
        writer.write(b"world")
        status, _, body = await scenarios.read_response(reader)
        assert (status, body) == (200, b"helloworld")
        # Draining: the connection closes after its response.
        assert await reader.read() == b""
        writer.close()


async def served_anew(config: proxy.ProxyConfig) -> None:
    """New connections on both listeners are accepted and answered."""
    assert await scenarios.tcp_greeting(irs.address(config, 0)) == "t0"
    status, headers, _ = await scenarios.http_request(irs.address(config, 1), scenarios.get("/"))
    assert (status, headers["x-backend"]) == (200, "h0")


async def refused(config: proxy.ProxyConfig) -> None:
    for index in (0, 1):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*irs.address(config, index))


@pytest.mark.parametrize("workers", [1, 2])
async def test_close_serves_new_connections_for_the_drain_period(served, workers):
    dp = runtime.DataPlane(workers=workers, drain_seconds=DRAIN_SECONDS)
    try:
        await dp.apply(served)
        await served_anew(served)
        in_flight = await InFlight().open(served)
        closing = asyncio.create_task(dp.close())

        def draining() -> bool:
            listeners = dp.status()["listeners"]
            return len(listeners) == 2 and all(li.get("draining") for li in listeners)

        await eventually(draining, what="every listener draining")
        await served_anew(served)
        await in_flight.complete()
        await closing
        await refused(served)
    finally:
        await dp.close(0)


async def test_sigterm_to_the_dataplane_process_drains(served, tmp_path: Path):
    path = tmp_path / "ir.yaml"
    path.write_text(yaml.safe_dump(codec.to_dict(served)))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubelb.dataplane", "--config", str(path),
        "--drain-seconds", str(DRAIN_SECONDS),
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stderr is not None
    try:

        async def logged(text: str) -> None:
            assert process.stderr is not None
            async with asyncio.timeout(60):
                while line := await process.stderr.readline():
                    if text in line.decode():
                        return
            pytest.fail(f"the data plane exited before logging {text!r}")

        await logged("serving ")
        await served_anew(served)
        in_flight = await InFlight().open(served)
        process.send_signal(signal.SIGTERM)
        await logged("draining 2 listeners")
        await served_anew(served)
        await in_flight.complete()
        async with asyncio.timeout(DRAIN_SECONDS + 30):
            assert await process.wait() == 0
        await refused(served)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
