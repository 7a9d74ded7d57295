"""Standalone kubelb refuses hostile names from its files before they reach the IR (300
characters, 64 KiB, ../../etc/passwd, a namespace `a b`, a newline), keeps serving the rest, and
logs the refused names escaped: no line of its log is forged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.standalone import backends, harness
from tests.integration.standalone.harness import free_port, lb_yaml

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
FORGED = "FORGED 2026-01-01 00:00:00,000 ERROR kubelb: tenant bravo deleted"
HOSTILE = {
    "300 characters": ("a" * 300, "it"),
    "64 KiB": ("a" * 65536, "it"),
    "path": ("../../etc/passwd", "it"),
    "namespace a b": ("web", "a b"),
    "newline": (f"web\n{FORGED}", "it"),
}


async def test_hostile_names_are_refused_and_logged_escaped(tmp_path: Path):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    kubelb = harness.Standalone(dataplane="python", config_dir=config_dir,
                                state_dir=tmp_path / "state",
                                log_path=tmp_path / "kubelb.log")  # fmt: skip
    backend, good_port = free_port(), free_port()
    (config_dir / "good.yaml").write_text(lb_yaml("good", good_port, [("127.0.0.11", backend)]))
    for i, (name, namespace) in enumerate(HOSTILE.values()):
        doc = yaml.safe_load(lb_yaml("x", free_port(), [("127.0.0.11", backend)]))
        doc["metadata"] = {"name": name, "namespace": namespace}
        (config_dir / f"hostile-{i}.yaml").write_text(yaml.safe_dump(doc))
    files = [f"hostile-{i}.yaml" for i in range(len(HOSTILE))]

    def reported(doc):
        good = kubelb.lb(doc, "good")
        refused = [
            f for f in files if any(e.startswith(f"{config_dir / f}#") for e in doc["errors"])
        ]
        return refused if good and good["ready"] and refused == files else None

    try:
        async with backends.tcp_echo("A", "127.0.0.11", backend):
            await kubelb.start()
            doc = await kubelb.wait_for(reported, "every hostile file refused")
            names = {(lb["namespace"], lb["name"]) for lb in doc["loadBalancers"]}
            assert names == {("it", "good")}  # nothing hostile reached the reconcilers
            answer = await backends.eventually(lambda: backends.request(HOST, good_port), "good")
            assert answer == b"A:ping"
    finally:
        assert await kubelb.stop() == 0, kubelb.logs()
    lines = kubelb.logs().splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    assert any("web\\nFORGED" in line for line in lines)
    assert max(len(line) for line in lines) < 4096  # the 64 KiB name is never logged whole
