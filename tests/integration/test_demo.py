"""`make demo` works: real backends, standalone mode and a real Envoy, traffic spread and sticky,
the HTTPRoute behind the Gateway `kubelb` sends each host, path and header to its backend, and
its hosts answer over HTTPS on the Gateway's HTTPS listener."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.integration.standalone.harness import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("dataplane", ["envoy", "python"])
def test_demo_shows_round_robin_persistence_and_routes(dataplane: str) -> None:
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
    routed = dict(re.findall(r"route (\S+\s+\S+(?:\s+x-version: \S+)?)\s+-> (\S+)", out))
    backends = {" ".join(k.split()): re.sub(r"-\d$", "", v) for k, v in routed.items()}
    assert backends == {
        "shop.demo.local /": "backend",  # the web Service's nodes
        "shop.demo.local /api/items": "api",  # the path split
        "shop.demo.local / x-version: beta": "beta",  # the header match
        "www.demo.local /api/items": "api",  # the second host
        "other.demo.local /": "404",  # no route for the host
    }, out
    # HTTPS on the Gateway's listener: each host's certificate verified against the demo CA.
    secure = dict(re.findall(r"https://(\S+):8443/ -> (\S+) \((?:TLSv1\.[23]), certificate", out))
    assert {h: re.sub(r"-\d$", "", v) for h, v in secure.items()} == {
        "shop.demo.local": "backend",
        "www.demo.local": "backend",
    }, out
    assert "kubelb demo: stopped" in out
