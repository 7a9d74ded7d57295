"""The control channel of the detached Python data plane: records, socket paths, messages."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from kubelb.app import python_driver
from kubelb.dataplane import control
from kubelb.ir import codec, proxy
from tests.integration.dataplane import irs


def test_a_record_round_trips_and_names_a_running_process(tmp_path: Path) -> None:
    me = control.Record(pid=os.getpid(), start_time=control.start_time(os.getpid()) or 0,
                        socket="/x/control.sock", spec={"workers": 2})  # fmt: skip
    me.write(tmp_path)
    assert control.Record.read(tmp_path) == me
    assert me.running()
    # The same pid started at another time is another process (pid reuse).
    assert not control.Record(pid=me.pid, start_time=me.start_time + 1, socket="",
                              spec={}).running()  # fmt: skip


@pytest.mark.parametrize("text", ["", "{", '{"pid": "x"}', '{"pid": 1}'])
def test_an_unreadable_record_is_none(tmp_path: Path, text: str) -> None:
    (tmp_path / control.RECORD).write_text(text)
    assert control.Record.read(tmp_path) is None


def test_a_socket_path_too_long_for_unix_sockets_moves_to_a_short_folder(tmp_path: Path) -> None:
    assert control.socket_path(tmp_path) == tmp_path / control.SOCKET
    deep = tmp_path / ("d" * 120)
    path = control.socket_path(deep)
    assert len(os.fsencode(path)) < 108
    assert path.name == control.SOCKET


async def test_requests_are_answered_in_order_and_fail_when_the_data_plane_goes() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async for message in control.read_messages(reader):
            if message["op"] == "apply":
                writer.write(await control.encode({"op": "status", "status": {"pushed": 1}}))
                answer = {"op": "applied", "status": {"n": message["config"]}}
                writer.write(await control.encode(answer))
            else:  # anything else: the data plane "dies"
                writer.close()
                return

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = control.Client(reader, writer)
    reading = asyncio.create_task(client.run())
    try:
        answers = await asyncio.gather(*(client.request({"op": "apply", "config": n})
                                         for n in range(3)))  # fmt: skip
        assert [a["status"]["n"] for a in answers] == [0, 1, 2]
        assert client.status == {"n": 2}
        with pytest.raises(control.ControlClosed):
            await client.request({"op": "stop"})
        await reading
        with pytest.raises(control.ControlClosed):
            await client.request({"op": "apply", "config": 3})
    finally:
        client.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("line", "name", "level", "message"),
    [
        ("INFO kubelb.dataplane.listeners: listener a: serving", "kubelb.dataplane.listeners",
         logging.INFO, "listener a: serving"),
        ("2026-01-01 00:00:00,000 worker-1 ERROR kubelb.dataplane.tcp: x: y",
         "kubelb.dataplane.tcp",
         logging.ERROR, "x: y"),
        ("Traceback (most recent call last):", python_driver.__name__, logging.INFO,
         "data plane: Traceback (most recent call last):"),
    ],
)  # fmt: skip
def test_the_data_planes_log_lines_keep_their_logger_and_level(
    caplog: pytest.LogCaptureFixture, line: str, name: str, level: int, message: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        python_driver._log_line(line)
    (record,) = caplog.records
    assert (record.name, record.levelno, record.getMessage()) == (name, level, message)


async def test_an_http_configuration_crosses_the_channel_unchanged() -> None:
    """Virtual hosts, routes and options survive the encoding the data plane receives."""

    class Server:
        port = 8080

    config = irs.http(
        [("a", [Server()], ("x.test",), "/"), ("b", [Server()], ("y.test", "*.y.test"), "/api")],
        port=8000, options=proxy.HTTPOptions(),
    )  # fmt: skip
    line = await control.encode({"op": "apply", "config": codec.to_dict(config)})
    message = await control.decode(line)
    assert codec.proxy_config_from_dict(message["config"]) == config
