"""Standalone kubelb never lets a listener share a socket with itself or another instance: a
LoadBalancer on kubelb's own xDS or admin port is refused (PortReserved, not
Serving); a second instance on the same --listen-address refuses to start; one on another
--listen-address but the same pool and ports refuses the taken listener (PortConflict)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.standalone import backends, harness
from tests.integration.standalone.harness import free_port, lb_yaml

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
BACKEND_A, BACKEND_B = "127.0.0.11", "127.0.0.12"
ROUNDS = 20


@pytest.fixture
async def instances(tmp_path: Path) -> AsyncIterator[Callable[..., harness.Standalone]]:
    """`instances(name, **fields)` -> an Envoy-backed standalone kubelb, stopped afterwards."""
    made: list[harness.Standalone] = []

    def make(name: str, **fields: object) -> harness.Standalone:
        config_dir = tmp_path / name / "config"
        config_dir.mkdir(parents=True)
        instance = harness.Standalone(
            dataplane="envoy",
            config_dir=config_dir,
            state_dir=tmp_path / name / "state",
            log_path=tmp_path / name / "kubelb.log",
            **fields,  # type: ignore[arg-type]
        )
        made.append(instance)
        return instance

    yield make
    for instance in made:
        await instance.stop()


def _reason(doc: dict[str, Any], name: str) -> str | None:
    lb = next((lb for lb in doc["loadBalancers"] if lb["name"] == name), None)
    conditions = (lb or {}).get("conditions") or ()  # none yet: listed before its first verdict
    return conditions[0]["reason"] if conditions else None


async def test_lb_on_kubelb_own_ports_is_refused(instances):
    kubelb = instances("one")
    backend, good_port = free_port(), free_port()
    (kubelb.config_dir / "good.yaml").write_text(lb_yaml("good", good_port, [(BACKEND_A, backend)]))
    own = {"xds": kubelb.xds_port, "admin": kubelb.admin_port}
    for name, port in own.items():
        (kubelb.config_dir / f"{name}.yaml").write_text(lb_yaml(name, port, [(BACKEND_A, backend)]))
    async with backends.tcp_echo("A", BACKEND_A, backend):
        await kubelb.start()
        doc = await kubelb.wait_for(
            lambda d: all(_reason(d, n) == "PortReserved" for n in own), "own ports refused"
        )
        for name in own:
            lb = kubelb.lb(doc, name)
            assert not lb["ready"], lb
            assert lb["address"] is None, lb
            assert "reserved for kubelb itself" in lb["conditions"][0]["message"]
        good = await backends.eventually(lambda: backends.request(HOST, good_port), "LB good")
        assert good == b"A:ping"
        doc = await kubelb.wait_for(lambda d: d["dataplane"]["xds"]["inSync"], "Envoy in sync")
        assert doc["dataplane"]["xds"]["lastNack"] is None  # no listener failed to bind


async def test_second_instance_on_the_same_listen_address_exits(instances):
    first = instances("first")
    await first.start()
    second = instances("second", xds_port=first.xds_port)
    await second.spawn()
    assert second.process is not None
    assert await second.process.wait() == 1
    errors = [line for line in second.logs().splitlines() if "ERROR" in line]
    assert len(errors) == 1, second.logs()
    assert f"cannot listen on 127.0.0.1:{first.xds_port}" in errors[0]
    assert first.process is not None
    assert first.process.returncode is None


async def test_second_instance_sharing_the_pool_refuses_the_taken_listener(instances):
    port, backend = free_port(), free_port()
    first, second = instances("first"), instances("second")
    (first.config_dir / "web.yaml").write_text(lb_yaml("web", port, [(BACKEND_A, backend)]))
    (second.config_dir / "web.yaml").write_text(lb_yaml("web", port, [(BACKEND_B, backend)]))
    async with (
        backends.tcp_echo("A", BACKEND_A, backend),
        backends.tcp_echo("B", BACKEND_B, backend),
    ):
        await first.start()
        await first.wait_for(lambda d: first.lb(d, "web")["ready"], "first serving")
        await backends.eventually(lambda: backends.request(HOST, port), "first's listener")
        await second.start()
        doc = await second.wait_for(
            lambda d: _reason(d, "web") == "PortConflict", "the taken listener refused"
        )
        lb = second.lb(doc, "web")
        assert not lb["ready"]
        assert "another process on this host" in lb["conditions"][0]["message"]
        answers = [await backends.request(HOST, port) for _ in range(ROUNDS)]
        assert answers == [b"A:ping"] * ROUNDS  # nothing split to the second instance
