"""After its data plane dies, standalone kubelb does not say its LoadBalancers are served: a real
Envoy killed from outside and kept from starting again, or the Python data plane killed. The
LoadBalancer's Ready turns False with EnvoyNotReady and why the data plane restarts, and True
again, traffic flowing, once it is back."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubelb.dataplane import control
from kubelb.envoy import supervisor
from tests.integration.standalone import backends, harness
from tests.integration.standalone.harness import free_port, lb_yaml
from tests.support.processes import held_envoy

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
BACKEND = "127.0.0.13"
REFUSAL = "test wrapper: Envoy kept from starting"


async def test_a_crashed_envoy_is_not_reported_served(tmp_path: Path) -> None:
    wrapper, marker = held_envoy(tmp_path, REFUSAL)
    state_dir = tmp_path / "state"
    kubelb, port, backend, a = _serving_a(tmp_path, "envoy", ("--envoy-binary", str(wrapper)))

    try:
        async with backends.tcp_echo("A", BACKEND, backend):
            await kubelb.start()
            await backends.eventually(lambda: backends.request(HOST, port), "LB a to answer")
            doc = await kubelb.wait_for(lambda d: a(d)["ready"], "LB a Ready")
            shim = doc["dataplane"]["pid"]
            (envoy,) = _children(shim)

            marker.touch()
            os.kill(envoy, signal.SIGKILL)
            doc = await kubelb.wait_for(lambda d: not a(d)["ready"], "LB a not Ready")
            (condition,) = a(doc)["conditions"]
            assert condition["reason"] == "EnvoyNotReady", condition
            assert "Envoy restarting after" in condition["message"], condition

            marker.unlink()
            doc = await kubelb.wait_for(lambda d: a(d)["ready"], "LB a Ready again")
            assert a(doc)["conditions"][0]["reason"] == "Reconciled"
            assert await backends.eventually(lambda: backends.request(HOST, port), "LB a") == (
                b"A:ping"
            )
            assert doc["dataplane"]["restarts"] >= 1
    finally:
        await kubelb.stop()
        supervisor.reap(state_dir)


LbOf = Callable[[dict[str, Any]], dict[str, Any]]


def _serving_a(
    tmp_path: Path, dataplane: str, extra_args: tuple[str, ...] = ()
) -> tuple[harness.Standalone, int, int, LbOf]:
    """A standalone kubelb (not started) whose config holds LoadBalancer `a` on a free port to a
    backend port on BACKEND, and the look-up of `a` in its status document."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    kubelb = harness.Standalone(dataplane=dataplane, config_dir=config_dir,
                                state_dir=tmp_path / "state", log_path=tmp_path / "kubelb.log",
                                extra_args=extra_args)  # fmt: skip
    port, backend = free_port(), free_port()
    (config_dir / "a.yaml").write_text(lb_yaml("a", port, [(BACKEND, backend)]))

    def a(doc: dict[str, Any]) -> dict[str, Any]:
        found = kubelb.lb(doc, "a")
        assert found is not None, doc
        return found

    return kubelb, port, backend, a


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_a_killed_python_dataplane_is_not_reported_served(tmp_path: Path) -> None:
    """The same for the Python data plane, killed with its workers: Ready says why until the
    restarted one serves (its restart takes at least its first backoff step, 0.5 s)."""
    state_dir = tmp_path / "state"
    kubelb, port, backend, a = _serving_a(tmp_path, "python")

    try:
        async with backends.tcp_echo("A", BACKEND, backend):
            await kubelb.start()
            await backends.eventually(lambda: backends.request(HOST, port), "LB a to answer")
            await kubelb.wait_for(lambda d: a(d)["ready"], "LB a Ready")
            assert control.reap(state_dir)  # kill -9 of the data plane and its workers
            doc = await kubelb.wait_for(lambda d: not a(d)["ready"], "LB a not Ready")
            (condition,) = a(doc)["conditions"]
            assert condition["reason"] == "EnvoyNotReady", condition
            assert "Python data plane restarting after" in condition["message"], condition
            doc = await kubelb.wait_for(lambda d: a(d)["ready"], "LB a Ready again")
            assert doc["dataplane"]["restarts"] == 1
            assert await backends.eventually(lambda: backends.request(HOST, port), "LB a") == (
                b"A:ping"
            )
    finally:
        await kubelb.stop()
        control.reap(state_dir)
