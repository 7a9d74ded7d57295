"""A configuration too big for Envoy's file descriptors is refused, on a real Envoy: kubelb runs
with a low RLIMIT_NOFILE (which its Envoy inherits), a LoadBalancer with more listeners than fit
is refused with the reason in the data plane's status, the log and that LoadBalancer's Ready
condition, Envoy is neither restarted nor crashed, and the LoadBalancer already serving stays
Ready and keeps serving every request meanwhile."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from kubelb.envoy import supervisor
from tests.integration.standalone import backends, harness
from tests.integration.standalone.harness import free_port, lb_yaml
from tests.integration.standalone.test_survival import RequestLoop, _children, _requests_pass

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
# Listeners that fit the limit the test sets; the big LoadBalancer has twice as many.
FITTING = 10
BACKEND = "127.0.0.11"


def _ports_yaml(name: str, ports: list[int], backend: int) -> str:
    listed = ", ".join(f"{{name: p{i}, port: {p}, protocol: TCP}}" for i, p in enumerate(ports))
    targets = ", ".join(
        f"{{name: p{i}, port: {backend}, protocol: TCP}}" for i in range(len(ports))
    )
    return "\n".join([
        "apiVersion: kubelb.k8c.io/v1alpha1",
        "kind: LoadBalancer",
        f"metadata: {{name: {name}, namespace: it}}",
        "spec:",
        f"  ports: [{listed}]",
        "  endpoints:",
        f"    - addresses: [{{ip: {BACKEND}}}]",
        f"      ports: [{targets}]",
    ]) + "\n"  # fmt: skip


async def test_a_configuration_over_the_fd_limit_is_refused_and_the_serving_one_stays(
    tmp_path: Path,
) -> None:
    # Standalone Envoy runs a worker per core; each listener takes a socket per worker and one.
    workers = os.cpu_count() or 1
    limit = supervisor.FD_RESERVE + FITTING * (workers + 1)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    state_dir = tmp_path / "state"
    kubelb = harness.Standalone(dataplane="envoy", config_dir=config_dir, state_dir=state_dir,
                                log_path=tmp_path / "kubelb.log", fd_limit=limit)  # fmt: skip
    port, backend = free_port(), free_port()
    (config_dir / "a.yaml").write_text(lb_yaml("a", port, [(BACKEND, backend)]))
    loop = RequestLoop(port)
    try:
        async with backends.tcp_echo("A", BACKEND, backend):
            await kubelb.start()
            await backends.eventually(lambda: backends.request(HOST, port), "LB a to answer")
            before = (await kubelb.status())["dataplane"]
            (envoy,) = _children(before["pid"])  # Envoy itself, under its shim
            assert _open_files_limit(envoy) == (limit, limit)
            loop.start()
            await _requests_pass(loop, 20)

            big_ports = [free_port() for _ in range(2 * FITTING)]
            (config_dir / "big.yaml").write_text(_ports_yaml("big", big_ports, backend))
            doc = await kubelb.wait_for(lambda d: d["dataplane"]["xds"]["refused"],
                                        "the big configuration to be refused")  # fmt: skip
            refused = doc["dataplane"]["xds"]["refused"]
            assert f"over the limit of {limit} (RLIMIT_NOFILE)" in refused, refused
            assert "RLIMIT_NOFILE" in kubelb.logs()
            # The LoadBalancer refused says so; the one served stays Ready.
            doc = await kubelb.wait_for(lambda d: not _lb(kubelb, d, "big")["ready"],
                                        "LB big not Ready")  # fmt: skip
            (condition,) = _lb(kubelb, doc, "big")["conditions"]
            assert "RLIMIT_NOFILE" in condition["message"], condition
            assert _lb(kubelb, doc, "a")["ready"]
            await _requests_pass(loop, 50)
            assert not await _answers(big_ports[0])  # the refused listeners are not served
            doc = await kubelb.status()
            assert doc["dataplane"]["pid"] == before["pid"]
            assert doc["dataplane"]["restarts"] == 0
            assert doc["dataplane"]["xds"]["lastNack"] is None

            # Without the big LoadBalancer the refusal ends, and a small one that fits is served.
            (config_dir / "big.yaml").unlink()
            await kubelb.wait_for(lambda d: d["dataplane"]["xds"]["refused"] is None,
                                  "the refusal to end")  # fmt: skip
            assert _lb(kubelb, await kubelb.status(), "a")["ready"]
            small = free_port()
            (config_dir / "small.yaml").write_text(lb_yaml("small", small, [(BACKEND, backend)]))
            await backends.eventually(lambda: backends.request(HOST, small), "LB small to answer")
            await _requests_pass(loop, 20)
            await loop.stop()
            assert loop.failures == [], f"{len(loop.failures)} of {loop.ok} failed"
            assert (await kubelb.status())["dataplane"]["restarts"] == 0
    finally:
        if not loop._stop.is_set() and loop._task is not None:
            await loop.stop()
        await kubelb.stop()
        supervisor.reap(state_dir)


def _lb(kubelb: harness.Standalone, doc: dict[str, Any], name: str) -> dict[str, Any]:
    found = kubelb.lb(doc, name)
    assert found is not None, f"no LoadBalancer {name}: {doc}"
    return found


def _open_files_limit(pid: int) -> tuple[int, int]:
    """(soft, hard) RLIMIT_NOFILE of a running process."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open files limit for pid {pid}")


async def _answers(port: int) -> bool:
    try:
        await backends.request(HOST, port)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    return True
