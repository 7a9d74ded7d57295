"""`make demo` works: real backends, standalone mode and a real Envoy, traffic spread and sticky."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.integration.standalone.harness import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("dataplane", ["envoy", "python"])
def test_demo_shows_round_robin_and_persistence(dataplane: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubelb.demo",
            "--duration",
            "0.5",
            "--dataplane",
            dataplane,
            "--admin-address",
            f"127.0.0.1:{free_port()}",
            "--listen-address",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    spread = re.search(r"demo/web\s+\S+\s+12 requests -> (.*)", out)
    sticky = re.search(r"demo/web-sticky\s+\S+\s+12 requests -> (.*)", out)
    assert spread is not None, out
    assert sticky is not None, out
    assert spread.group(1).count("backend-") == 3  # round robin reached every backend
    assert re.fullmatch(r"backend-\d: 12", sticky.group(1))  # one client, one backend
    assert "kubelb demo: stopped" in out
