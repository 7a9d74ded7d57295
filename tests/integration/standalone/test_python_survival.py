"""The Python data plane outlives kubelb: `kill -9` of standalone kubelb (`--dataplane python`)
and its restart fail no request, and the restarted kubelb adopts the running data plane (same
pid, no listener bound again) from --state-dir instead of starting another."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelb.dataplane import control
from tests.integration.standalone import backends, harness
from tests.integration.standalone.harness import free_port, lb_yaml
from tests.integration.standalone.test_survival import RequestLoop, _requests_pass, _true
from tests.support.processes import pid_alive

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


@pytest.mark.parametrize("workers", [1, 2])
async def test_kill_9_of_kubelb_fails_no_request_and_the_python_dataplane_is_adopted(
    tmp_path: Path, workers: int
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    state_dir = tmp_path / "state"
    kubelb = harness.Standalone(dataplane="python", config_dir=config_dir, state_dir=state_dir,
                                log_path=tmp_path / "kubelb.log",
                                extra_args=("--workers", str(workers)))  # fmt: skip
    port, backend = free_port(), free_port()
    (config_dir / "a.yaml").write_text(lb_yaml("a", port, [("127.0.0.11", backend)]))
    loop = RequestLoop(port)
    try:
        async with backends.tcp_echo("A", "127.0.0.11", backend):
            await kubelb.start()
            await backends.eventually(lambda: backends.request(HOST, port), "LB a to answer")
            doc = await kubelb.status()
            dataplane_pid = doc["dataplane"]["pid"]
            assert dataplane_pid is not None
            assert kubelb.process is not None
            assert dataplane_pid != kubelb.process.pid  # a process of its own
            listening = _listening_sockets(port)
            assert len(listening) == workers

            loop.start()
            await _requests_pass(loop, 20)
            kubelb.process.kill()
            assert await kubelb.process.wait() == -9
            await _requests_pass(loop, 50)  # served by the orphaned data plane alone
            assert pid_alive(dataplane_pid)

            await kubelb.start()
            doc = await kubelb.wait_for(lambda d: d["dataplane"].get("adopted"),
                                        "the data plane to be adopted")  # fmt: skip
            assert doc["dataplane"]["pid"] == dataplane_pid
            assert doc["dataplane"]["restarts"] == 0
            # The same listening sockets: nothing was bound again.
            assert _listening_sockets(port) == listening
            await _requests_pass(loop, 50)
            await loop.stop()
            assert loop.failures == [], f"{len(loop.failures)} of {loop.ok} failed"
            assert "Python data plane adopted" in kubelb.logs()
            # Its log lines still reach kubelb's log through the reopened FIFO.
            port_b = free_port()
            (config_dir / "b.yaml").write_text(lb_yaml("b", port_b, [("127.0.0.11", backend)]))
            await backends.eventually(lambda: backends.request(HOST, port_b), "LB b to answer")
            since_adoption = kubelb.logs().split("Python data plane adopted")[-1]
            assert f"serving tcp on 127.0.0.1:{port_b}" in since_adoption.lower()

            # A clean stop still drains and stops the adopted data plane.
            assert await kubelb.stop() == 0
            await backends.eventually(
                lambda: _true(not pid_alive(dataplane_pid)), "the data plane to stop with kubelb"
            )
    finally:
        if not loop._stop.is_set() and loop._task is not None:
            await loop.stop()
        await kubelb.stop()
        control.reap(state_dir)


async def test_a_python_dataplane_killed_under_kubelb_is_restarted_with_its_configuration(
    tmp_path: Path,
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    state_dir = tmp_path / "state"
    kubelb = harness.Standalone(dataplane="python", config_dir=config_dir, state_dir=state_dir,
                                log_path=tmp_path / "kubelb.log")  # fmt: skip
    port, backend = free_port(), free_port()
    (config_dir / "a.yaml").write_text(lb_yaml("a", port, [("127.0.0.11", backend)]))
    try:
        async with backends.tcp_echo("A", "127.0.0.11", backend):
            await kubelb.start()
            await backends.eventually(lambda: backends.request(HOST, port), "LB a to answer")
            first = (await kubelb.status())["dataplane"]["pid"]
            control.reap(state_dir)  # kill -9 of the data plane and its workers
            doc = await kubelb.wait_for(
                lambda d: d["dataplane"]["restarts"] == 1 and d["dataplane"]["ready"],
                "the data plane to be restarted and configured",
            )
            assert doc["dataplane"]["pid"] not in (None, first)
            assert await backends.eventually(lambda: backends.request(HOST, port), "LB a") == (
                b"A:ping"
            )
            assert "SIGKILL" in kubelb.logs()
    finally:
        await kubelb.stop()
        control.reap(state_dir)


def _listening_sockets(port: int) -> set[int]:
    """The inodes of the TCP sockets listening on `port` (one per worker)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "0A":  # LISTEN
            found.add(int(fields[9]))
    return found


async def test_a_python_dataplane_started_with_other_settings_is_replaced(tmp_path: Path) -> None:
    """kubelb restarted with other data-plane settings (here --workers) must not adopt the
    running data plane: it replaces it, and the LoadBalancer serves again."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    state_dir = tmp_path / "state"
    kubelb = harness.Standalone(dataplane="python", config_dir=config_dir, state_dir=state_dir,
                                log_path=tmp_path / "kubelb.log")  # fmt: skip
    port, backend = free_port(), free_port()
    (config_dir / "a.yaml").write_text(lb_yaml("a", port, [("127.0.0.11", backend)]))
    try:
        async with backends.tcp_echo("A", "127.0.0.11", backend):
            await kubelb.start()
            await backends.eventually(lambda: backends.request(HOST, port), "LB a to answer")
            first = (await kubelb.status())["dataplane"]["pid"]
            assert kubelb.process is not None
            kubelb.process.kill()
            await kubelb.process.wait()

            kubelb.extra_args = ("--workers", "2")
            await kubelb.start()
            doc = await kubelb.status()
            assert not doc["dataplane"]["adopted"]
            assert doc["dataplane"]["pid"] != first
            assert not pid_alive(first)
            assert doc["dataplane"]["workers"] == 2
            assert await backends.eventually(lambda: backends.request(HOST, port), "LB a") == (
                b"A:ping"
            )
            assert "was started with other settings; replacing it" in kubelb.logs()
    finally:
        await kubelb.stop()
        control.reap(state_dir)
