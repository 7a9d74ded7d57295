"""A tenant-controlled name cannot forge a line in the Python data plane's log: the real
`python -m kubelb.dataplane` serving a listener whose name holds a newline logs it escaped."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import yaml

from kubelb.util import ports

pytestmark = pytest.mark.integration

FORGED = "FORGED 2026-01-01 00:00:00,000 ERROR kubelb: tenant bravo deleted"


def _free_port() -> int:
    return ports.free_port()


async def test_listener_name_with_a_newline_stays_on_one_line(tmp_path: Path):
    name = f"web\n{FORGED}"
    ir = {
        "nodeId": "n",
        "listeners": [{"name": name, "address": "127.0.0.1", "port": _free_port(),
                       "protocol": "TCP", "clusters": ["c"], "owner": f"it/{name}"}],
        "clusters": [{"name": "c", "protocol": "TCP",
                      "endpoints": [{"address": "127.0.0.1", "port": _free_port()}]}],
    }  # fmt: skip
    config = tmp_path / "ir.yaml"
    config.write_text(yaml.safe_dump(ir))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubelb.dataplane", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any("serving TCP" in line for line in lines):
                raw = await proc.stderr.readline()
                assert raw, f"the data plane exited: {lines}"
                lines.append(raw.decode())
    finally:
        proc.terminate()
        await proc.wait()
    assert not [line for line in lines if line.startswith("FORGED")], lines
    serving = next(line for line in lines if "serving TCP" in line)
    assert "web\\nFORGED" in serving
