"""Bad files stay local: hostile config files, through the real `kubelb --mode=standalone`.

Each hostile input lands next to a LoadBalancer that serves; after each one, kubelb still runs,
the status says what is wrong, and the serving LoadBalancer keeps answering.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.standalone import backends, harness
from tests.integration.standalone.harness import free_port, lb_yaml

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


def _instance(tmp_path: Path, dataplane: str) -> harness.Standalone:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    return harness.Standalone(dataplane=dataplane, config_dir=config_dir,
                              state_dir=tmp_path / "state",
                              log_path=tmp_path / "kubelb.log")  # fmt: skip


@pytest.fixture
async def kubelb(tmp_path: Path) -> AsyncIterator[harness.Standalone]:
    instance = _instance(tmp_path, "python")
    yield instance
    code = await instance.stop()
    assert code == 0, f"kubelb exited with {code}:\n{instance.logs()}"


@pytest.fixture(params=["envoy", "python"])
async def both_planes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[harness.Standalone]:
    instance = _instance(tmp_path, request.param)
    yield instance
    code = await instance.stop()
    assert code == 0, f"kubelb exited with {code}:\n{instance.logs()}"


def _error(doc: dict[str, Any], *needles: str) -> bool:
    return any(all(n in e for n in needles) for e in doc["errors"])


async def test_hostile_files_never_stop_a_serving_load_balancer(kubelb, tmp_path):
    port, backend, other = free_port(), free_port(), free_port()
    config = kubelb.config_dir
    good = lb_yaml("a", port, [("127.0.0.11", backend)])
    (config / "a.yaml").write_text(good)
    async with (
        backends.tcp_echo("A", "127.0.0.11", backend),
        backends.tcp_echo("EVIL", "127.0.0.12", other),
    ):
        await kubelb.start()
        held = await backends.eventually(lambda: backends.Connection.open(HOST, port), "LB a")
        assert await held.roundtrip(b"0") == b"A:0"

        async def still_serving(check: Callable[[dict[str, Any]], Any], what: str) -> None:
            def settled(doc: dict[str, Any]) -> bool:
                a = kubelb.lb(doc, "a")
                return bool(check(doc)) and a is not None and a["ready"]

            doc = await kubelb.wait_for(settled, what)
            a = kubelb.lb(doc, "a")
            assert a is not None
            assert a["source"].endswith("a.yaml#0"), a
            assert await backends.request(HOST, port) == b"A:ping", what
            assert await held.roundtrip(b"1") == b"A:1", what

        # 4 KB of brackets: RecursionError once took kubelb down.
        (config / "deep.yaml").write_text("[" * 2048 + "]" * 2048)
        await still_serving(lambda d: _error(d, "deep.yaml", "deeper than"), "deep.yaml refused")
        (config / "deep.yaml").unlink()

        # The LoadBalancer's own file replaced by a folder: its last good version stays.
        (config / "a.yaml").rename(tmp_path / "a.yaml.saved")
        (config / "a.yaml").mkdir()
        await still_serving(lambda d: _error(d, "a.yaml", "is a folder"), "folder reported")
        (config / "a.yaml").rmdir()
        (tmp_path / "a.yaml.saved").rename(config / "a.yaml")

        # A symlink loop and a dangling symlink are reported, not skipped.
        (config / "loop.yaml").symlink_to(config / "loop2.yaml")
        (config / "loop2.yaml").symlink_to(config / "loop.yaml")
        (config / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
        await still_serving(
            lambda d: _error(d, "loop.yaml", "symlink") and _error(d, "dangling.yaml", "symlink"),
            "symlinks reported",
        )
        for name in ("loop.yaml", "loop2.yaml", "dangling.yaml"):
            (config / name).unlink()

        # A duplicate in a file that sorts earlier, pointing elsewhere: the original serves.
        (config / "0.yaml").write_text(lb_yaml("a", port, [("127.0.0.12", other)]))
        await still_serving(lambda d: _error(d, "0.yaml", "duplicate", "a.yaml#0"), "duplicate")
        (config / "0.yaml").unlink()

        # Port 70000 and an endpoint that is no IP never replace the serving version.
        (config / "a.yaml").write_text(good.replace(f"port: {port},", "port: 70000,", 1))
        await still_serving(lambda d: _error(d, "a.yaml", "70000"), "port 70000 refused")
        (config / "a.yaml").write_text(good.replace("127.0.0.11", "999.1.1.1"))
        await still_serving(lambda d: _error(d, "a.yaml", "999.1.1.1"), "999.1.1.1 refused")

        # A typo is warned about, and the rest of the document applies.
        (config / "a.yaml").write_text(good.replace("spec:\n", "spec:\n  prots: []\n"))
        doc = await kubelb.wait_for(
            lambda d: any("spec.prots" in w for w in d.get("warnings", ())), "typo warned"
        )
        assert not doc["errors"]
        a = kubelb.lb(doc, "a")
        assert a is not None
        assert any("spec.prots" in w for w in a["warnings"])
        assert "spec.prots" in kubelb.logs()

        # The whole config folder renamed away: everything keeps serving, and kubelb says why.
        config.rename(tmp_path / "config.moved")
        await still_serving(lambda d: _error(d, str(config), "does not exist"), "folder gone")
        (tmp_path / "config.moved").rename(config)
        await still_serving(lambda d: not d["errors"], "folder back")
        await held.close()


async def test_hostnames_and_non_ips_are_not_serving(kubelb):
    port, other_port = free_port(), free_port()
    config = kubelb.config_dir
    (config / "ip.yaml").write_text(lb_yaml("bad-ip", port, [("999.1.1.1", 8080)]))
    host = lb_yaml("host", other_port, [("127.0.0.1", 8080)])
    (config / "host.yaml").write_text(host.replace("{ip: 127.0.0.1}", "{hostname: nx.invalid}"))
    await kubelb.start()

    def verdicts(doc: dict[str, Any]) -> bool:
        lbs = [kubelb.lb(doc, n) for n in ("bad-ip", "host")]
        return all(lb and lb["conditions"] and lb["conditions"][0]["reason"] != "NoAddress"
                   for lb in lbs)  # fmt: skip

    doc = await kubelb.wait_for(verdicts, "verdicts")
    bad_ip, hostname = kubelb.lb(doc, "bad-ip"), kubelb.lb(doc, "host")
    assert bad_ip is not None
    assert hostname is not None
    # Neither can be checked against the endpoint policy (a name is resolved out of its sight),
    # so neither is served, and neither says Serving.
    for lb in (bad_ip, hostname):
        assert not lb["ready"], lb
        assert lb["conditions"][0]["reason"] == "EndpointRefused", lb
        assert "not an IP address" in lb["conditions"][0]["message"], lb


async def test_names_that_once_collided_both_serve_and_take_updates(both_planes):
    """`a-b/c` and `a/b-c` once shared their listener and cluster names: from then on neither
    data plane took an update (while the API said Serving)."""
    kubelb = both_planes
    one, two, backend = free_port(), free_port(), free_port()
    config = kubelb.config_dir
    (config / "one.yaml").write_text(lb_yaml("c", one, [("127.0.0.11", backend)], namespace="a-b"))
    (config / "two.yaml").write_text(lb_yaml("b-c", two, [("127.0.0.12", backend)], namespace="a"))
    async with (
        backends.tcp_echo("ONE", "127.0.0.11", backend),
        backends.tcp_echo("TWO", "127.0.0.12", backend),
        backends.tcp_echo("NEW", "127.0.0.13", backend),
    ):
        await kubelb.start()
        assert await backends.eventually(lambda: backends.request(HOST, one), "c") == b"ONE:ping"
        assert await backends.eventually(lambda: backends.request(HOST, two), "b-c") == b"TWO:ping"
        (config / "two.yaml").write_text(
            lb_yaml("b-c", two, [("127.0.0.13", backend)], namespace="a")
        )

        async def moved() -> None:
            assert await backends.request(HOST, two) == b"NEW:ping"

        await backends.eventually(moved, "the update to reach the data plane")
        assert await backends.request(HOST, one) == b"ONE:ping"
        doc = await kubelb.status()
        assert all(lb["ready"] for lb in doc["loadBalancers"]), doc
