"""Envoy outlives kubelb: `kill -9` of standalone kubelb and its restart fail no request, and the
restarted kubelb adopts the running Envoy from --state-dir instead of starting another."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubelb.envoy import supervisor
from tests.integration.standalone import backends, harness
from tests.integration.standalone.harness import free_port, lb_yaml
from tests.support.processes import pid_alive

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
# Requests of the steady loop, at most: the restart completes well within them.
MAX_REQUESTS = 20_000
# One request, connect to close: far above a loaded machine's, it only turns a hang into a failure.
REQUEST_LIMIT = 15.0


class RequestLoop:
    """New connections one after the other, counted, until stopped or MAX_REQUESTS."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _run(self) -> None:
        while not self._stop.is_set() and self.ok + len(self.failures) < MAX_REQUESTS:
            try:
                # Connecting and closing too: a request that hangs is a failure, not a stall.
                async with asyncio.timeout(REQUEST_LIMIT):
                    answer = await backends.request(HOST, self.port)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                self.failures.append(repr(e))
            else:
                if answer == b"A:ping":
                    self.ok += 1
                else:
                    self.failures.append(repr(answer))
            await asyncio.sleep(0)


async def test_kill_9_of_kubelb_fails_no_request_and_the_envoy_is_adopted(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    state_dir = tmp_path / "state"
    kubelb = harness.Standalone(
        dataplane="envoy",
        config_dir=config_dir,
        state_dir=state_dir,
        log_path=tmp_path / "kubelb.log",
    )
    port, backend = free_port(), free_port()
    (config_dir / "a.yaml").write_text(lb_yaml("a", port, [("127.0.0.11", backend)]))
    loop = RequestLoop(port)
    try:
        async with backends.tcp_echo("A", "127.0.0.11", backend):
            await kubelb.start()
            await backends.eventually(lambda: backends.request(HOST, port), "LB a to answer")
            envoy_pid = (await kubelb.status())["dataplane"]["pid"]
            assert envoy_pid is not None
            envoy_children = _children(envoy_pid)  # Envoy itself, under its shim
            assert envoy_children

            loop.start()
            await _requests_pass(loop, 20)
            assert kubelb.process is not None
            kubelb.process.kill()
            assert await kubelb.process.wait() == -9
            await _requests_pass(loop, 50)  # served by the orphaned Envoy alone
            assert pid_alive(envoy_pid)

            await kubelb.start()
            doc = await kubelb.wait_for(
                lambda d: d["dataplane"].get("adopted") and d["dataplane"]["xds"]["inSync"],
                "the Envoy to be adopted and in sync",
            )
            assert doc["dataplane"]["pid"] == envoy_pid
            assert _children(envoy_pid) == envoy_children
            await _requests_pass(loop, 50)
            await loop.stop()
            assert loop.failures == [], f"{len(loop.failures)} of {loop.ok} failed"
            assert "adopted" in kubelb.logs()

            # A clean stop still drains and stops the adopted Envoy.
            assert await kubelb.stop() == 0
            await backends.eventually(
                lambda: _true(not pid_alive(envoy_pid)), "the Envoy to stop with kubelb"
            )
    except AssertionError as e:
        raise AssertionError(f"{e}\nkubelb's log, last lines:\n{kubelb.logs()[-4000:]}") from e
    finally:
        if not loop._stop.is_set() and loop._task is not None:
            await loop.stop()
        await kubelb.stop()
        supervisor.reap(state_dir)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()]


async def _requests_pass(loop: RequestLoop, count: int) -> None:
    target = loop.ok + count

    async def passed() -> bool:
        if loop._task is not None and loop._task.done():
            loop._task.result()  # the loop itself died: say how
            raise AssertionError(f"the request loop stopped after {loop.ok} requests")
        return await _true(loop.ok >= target)

    try:
        await backends.eventually(passed, f"{count} more requests")
    except AssertionError as e:
        raise AssertionError(f"{e} (ok: {loop.ok}, failures: {len(loop.failures)}, "
                             f"last: {loop.failures[-3:]})") from e  # fmt: skip


async def _true(value: bool) -> bool:
    if not value:
        raise AssertionError("not yet")
    return True
