"""Standalone mode end to end, through the real `kubelb` CLI, on both data planes.

Every scenario runs against Envoy and against the built-in Python data plane: where they differ in
behaviour, that is a bug to fix or a documented choice.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.standalone import backends, harness
from tests.integration.standalone.harness import free_port, free_tcp_udp_port, lb_yaml

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


# "envoy-delta": Envoy on incremental xDS (--xds-delta), which must behave as "envoy".
@pytest.fixture(params=["envoy", "envoy-delta", "python"])
async def kubelb(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[harness.Standalone]:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    delta = request.param == "envoy-delta"
    instance = harness.Standalone(
        dataplane="envoy" if delta else request.param,
        extra_args=("--xds-delta",) if delta else (),
        config_dir=config_dir,
        state_dir=tmp_path / "state",
        log_path=tmp_path / "kubelb.log",
    )
    yield instance
    code = await instance.stop()
    assert code == 0, f"kubelb exited with {code}:\n{instance.logs()}"
    if delta:
        assert "xDS delta stream" in instance.logs(), "Envoy did not use delta xDS"


async def test_added_lb_serves_removed_lb_stops_untouched_connection_survives(kubelb):
    a_port, b_port, backend_a, backend_b = (free_port() for _ in range(4))
    (kubelb.config_dir / "a.yaml").write_text(lb_yaml("a", a_port, [("127.0.0.11", backend_a)]))
    async with (
        backends.tcp_echo("A", "127.0.0.11", backend_a),
        backends.tcp_echo("B", "127.0.0.12", backend_b),
    ):
        await kubelb.start()
        held = await backends.eventually(
            lambda: backends.Connection.open(HOST, a_port), "LB a to accept"
        )
        assert await held.roundtrip(b"1") == b"A:1"

        (kubelb.config_dir / "b.yaml").write_text(lb_yaml("b", b_port, [("127.0.0.12", backend_b)]))
        assert (
            await backends.eventually(lambda: backends.request(HOST, b_port), "LB b") == b"B:ping"
        )
        assert await held.roundtrip(b"2") == b"A:2"  # untouched by the addition

        (kubelb.config_dir / "b.yaml").unlink()

        # A removed listener drains (Envoy: --drain-time-s) before it stops accepting.
        await backends.eventually(lambda: backends.refused(HOST, b_port), "LB b to stop listening")
        assert await held.roundtrip(b"3") == b"A:3"  # untouched by the removal
        doc = await kubelb.status()
        assert [lb["name"] for lb in doc["loadBalancers"]] == ["a"]
        await held.close()


async def test_endpoint_change_applies_to_new_connections_only(kubelb):
    port, backend = free_port(), free_port()
    path = kubelb.config_dir / "lb.yaml"
    path.write_text(lb_yaml("lb", port, [("127.0.0.11", backend)]))
    async with (
        backends.tcp_echo("OLD", "127.0.0.11", backend),
        backends.tcp_echo("NEW", "127.0.0.12", backend),
    ):
        await kubelb.start()
        held = await backends.eventually(lambda: backends.Connection.open(HOST, port), "LB")
        assert await held.roundtrip(b"x") == b"OLD:x"
        path.write_text(lb_yaml("lb", port, [("127.0.0.12", backend)]))

        async def switched() -> None:
            assert await backends.request(HOST, port) == b"NEW:ping"

        await backends.eventually(switched, "new connections to reach the new endpoint")
        assert await held.roundtrip(b"y") == b"OLD:y"  # in-flight connection kept its upstream
        await held.close()


async def test_udp_listener(kubelb):
    port, backend = free_tcp_udp_port(), free_tcp_udp_port()
    (kubelb.config_dir / "dns.yaml").write_text(
        lb_yaml("dns", port, [("127.0.0.11", backend)], protocol="UDP")
    )
    async with backends.udp_echo("U", "127.0.0.11", backend):
        await kubelb.start()
        answer = await backends.eventually(lambda: backends.udp_request(HOST, port), "UDP LB")
        assert answer == b"U:ping"


async def test_round_robin_over_several_endpoints(kubelb):
    port, backend = free_port(), free_port()
    hosts = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    (kubelb.config_dir / "lb.yaml").write_text(lb_yaml("lb", port, [(h, backend) for h in hosts]))
    async with (
        backends.tcp_echo("1", hosts[0], backend),
        backends.tcp_echo("2", hosts[1], backend),
        backends.tcp_echo("3", hosts[2], backend),
    ):
        await kubelb.start()
        await backends.eventually(lambda: backends.request(HOST, port), "LB")
        seen = {(await backends.request(HOST, port)).split(b":")[0] for _ in range(30)}
        assert seen == {b"1", b"2", b"3"}


async def test_source_ip_persistence_sticks(kubelb):
    port, backend = free_port(), free_port()
    hosts = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    (kubelb.config_dir / "lb.yaml").write_text(
        lb_yaml(
            "lb",
            port,
            [(h, backend) for h in hosts],
            extra_spec="  persistence: {type: SourceIP}\n",
        )
    )
    async with (
        backends.tcp_echo("1", hosts[0], backend),
        backends.tcp_echo("2", hosts[1], backend),
        backends.tcp_echo("3", hosts[2], backend),
    ):
        await kubelb.start()
        await backends.eventually(lambda: backends.request(HOST, port), "LB")
        seen = {(await backends.request(HOST, port)).split(b":")[0] for _ in range(20)}
        assert len(seen) == 1


async def test_bad_input_is_reported_and_others_keep_serving(kubelb):
    a_port, c_port, backend = free_port(), free_port(), free_port()
    (kubelb.config_dir / "a.yaml").write_text(lb_yaml("a", a_port, [("127.0.0.11", backend)]))
    async with backends.tcp_echo("A", "127.0.0.11", backend):
        await kubelb.start()
        held = await backends.eventually(lambda: backends.Connection.open(HOST, a_port), "LB a")
        assert await held.roundtrip(b"1") == b"A:1"

        (kubelb.config_dir / "broken.yaml").write_text("kind: [LoadBalancer\n")
        (kubelb.config_dir / "invalid.yaml").write_text(
            lb_yaml("invalid", c_port, [("127.0.0.11", backend)]).replace(
                "protocol: TCP", "protocol: SCTP"
            )
        )
        (kubelb.config_dir / "clash.yaml").write_text(
            lb_yaml("clash", a_port, [("127.0.0.11", backend)])
        )
        (kubelb.config_dir / "c.yaml").write_text(lb_yaml("c", c_port, [("127.0.0.11", backend)]))

        def reported(doc):
            invalid, clash, c = (kubelb.lb(doc, n) for n in ("invalid", "clash", "c"))
            return (
                invalid
                and invalid["conditions"]
                and clash
                and clash["conditions"]
                and clash["conditions"][0]["reason"] != "NoAddress"
                and c
                and c["ready"]
                and kubelb.lb(doc, "a")["ready"]
                and any("broken.yaml" in e for e in doc["errors"])
            )

        doc = await kubelb.wait_for(reported, "errors to be reported")
        invalid, clash = kubelb.lb(doc, "invalid"), kubelb.lb(doc, "clash")
        assert invalid["conditions"][0]["reason"] == "InvalidSpec"
        assert "protocol" in invalid["conditions"][0]["message"]
        assert clash["conditions"][0]["reason"] == "PortConflict"
        # The pool places the LoadBalancers' management Services: a's is envoy-a.
        assert "it/envoy-a" in clash["conditions"][0]["message"]
        assert kubelb.lb(doc, "a")["ready"]
        assert (
            await backends.eventually(lambda: backends.request(HOST, c_port), "LB c") == b"A:ping"
        )
        assert await held.roundtrip(b"2") == b"A:2"
        assert await backends.request(HOST, a_port) == b"A:ping"
        await held.close()


async def test_restart_keeps_every_address(kubelb):
    kubelb.address_pool = "127.0.0.1,127.0.0.2"
    port, backend = free_port(), free_port()
    (kubelb.config_dir / "z.yaml").write_text(lb_yaml("z", port, [("127.0.0.11", backend)]))
    async with backends.tcp_echo("Z", "127.0.0.11", backend):
        await kubelb.start()
        doc = await kubelb.wait_for(
            lambda d: kubelb.lb(d, "z") and kubelb.lb(d, "z")["ready"], "LB z"
        )
        assert kubelb.lb(doc, "z")["address"] == "127.0.0.1"
        assert await kubelb.stop() == 0
        # A newcomer that sorts first must not take z's address after the restart.
        (kubelb.config_dir / "a.yaml").write_text(lb_yaml("a", port, [("127.0.0.11", backend)]))
        await kubelb.start()
        doc = await kubelb.wait_for(
            lambda d: kubelb.lb(d, "a") and kubelb.lb(d, "a")["ready"], "LB a"
        )
        assert kubelb.lb(doc, "z")["address"] == "127.0.0.1"
        assert kubelb.lb(doc, "a")["address"] == "127.0.0.2"
        answer = await backends.eventually(lambda: backends.request("127.0.0.2", port), "LB a")
        assert answer == b"Z:ping"


async def test_file_change_to_traffic_is_applied_quickly(kubelb):
    """Not a timing assertion: proves the watch loop applies edits without a restart."""
    await kubelb.start()
    port, backend = free_port(), free_port()
    async with backends.tcp_echo("N", "127.0.0.11", backend):
        (kubelb.config_dir / "new.yaml").write_text(lb_yaml("new", port, [("127.0.0.11", backend)]))
        assert (
            await backends.eventually(lambda: backends.request(HOST, port), "new LB") == b"N:ping"
        )
    pid_before = (await kubelb.status())["dataplane"].get("pid")
    await asyncio.sleep(0)
    assert (await kubelb.status())["dataplane"].get("pid") == pid_before


async def test_endpoints_naming_kubelbs_own_servers_are_refused(kubelb):
    """A LoadBalancer may not forward to kubelb's admin or xDS server (it would hand out every
    LoadBalancer's configuration); the others keep serving."""
    good_port, admin_lb, xds_lb, backend = free_port(), free_port(), free_port(), free_port()
    (kubelb.config_dir / "good.yaml").write_text(
        lb_yaml("good", good_port, [("127.0.0.11", backend)])
    )
    (kubelb.config_dir / "admin.yaml").write_text(
        lb_yaml("to-admin", admin_lb, [("127.0.0.1", kubelb.admin_port)])
    )
    (kubelb.config_dir / "xds.yaml").write_text(
        lb_yaml("to-xds", xds_lb, [("127.0.0.1", kubelb.xds_port)])
    )
    async with backends.tcp_echo("G", "127.0.0.11", backend):
        await kubelb.start()

        def reported(doc):
            lbs = [kubelb.lb(doc, n) for n in ("good", "to-admin", "to-xds")]
            return all(lb and lb["conditions"] for lb in lbs) and lbs[0]["ready"]

        doc = await kubelb.wait_for(reported, "the refusals to be reported")
        # The Python data plane has no xDS server: nothing of kubelb's listens on that port.
        ours = {"to-admin": admin_lb, "to-xds": xds_lb}
        if kubelb.dataplane == "python":
            del ours["to-xds"]
        for name, port in ours.items():
            condition = kubelb.lb(doc, name)["conditions"][0]
            assert condition["reason"] == "EndpointRefused", condition
            assert not kubelb.lb(doc, name)["ready"]
            await no_answer_through(port)
        served = await backends.eventually(lambda: backends.request(HOST, good_port), "LB good")
        assert served == b"G:ping"


async def no_answer_through(port: int) -> None:
    """A request through the LoadBalancer's port gets no answer from kubelb's own server (the
    listener may still accept and close)."""
    try:
        conn = await backends.Connection.open(HOST, port)
    except OSError:
        return
    try:
        conn.writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
        await conn.writer.drain()
        async with asyncio.timeout(10):
            reply = await conn.reader.read()
    except OSError:
        return
    finally:
        await conn.close()
    assert not reply, reply


async def test_a_listener_envoy_rejects_is_not_reported_ready(kubelb):
    """Ready follows what the data plane accepted: a port another process holds makes Envoy
    NACK that listener; the LoadBalancer says so, its neighbour stays Ready, and moving it to a
    free port makes it Ready again."""
    if kubelb.dataplane == "python":
        pytest.skip("the Python data plane applies what it can and has no NACK")
    held_port, ok_port, free, backend = free_port(), free_port(), free_port(), free_port()
    holder = socket.socket()
    holder.bind((HOST, held_port))
    holder.listen()
    try:
        (kubelb.config_dir / "ok.yaml").write_text(
            lb_yaml("ok", ok_port, [("127.0.0.11", backend)])
        )
        (kubelb.config_dir / "held.yaml").write_text(
            lb_yaml("held", held_port, [("127.0.0.11", backend)])
        )
        await kubelb.start()

        def rejected(doc):
            held, ok = kubelb.lb(doc, "held"), kubelb.lb(doc, "ok")
            return (
                held
                and held["conditions"]
                and held["conditions"][0]["reason"] == "RejectedByDataplane"
                and ok
                and ok["ready"]
            )

        doc = await kubelb.wait_for(rejected, "the rejected listener to be reported")
        assert not kubelb.lb(doc, "held")["ready"]
        (kubelb.config_dir / "held.yaml").write_text(
            lb_yaml("held", free, [("127.0.0.11", backend)])
        )
        await kubelb.wait_for(
            lambda d: kubelb.lb(d, "held") and kubelb.lb(d, "held")["ready"], "held to be Ready"
        )
    finally:
        holder.close()
