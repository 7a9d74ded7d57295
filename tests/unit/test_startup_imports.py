"""What each long-running mode loads at start-up, checked in a fresh interpreter so the memory
saving cannot silently rot: kubernetes_asyncio (its generated models are about 40 MiB resident)
in no mode, gRPC and the xDS protos (about 20 MiB) only where Envoy is served, Kubernetes code
nowhere in the data plane, cryptography (about 10 MiB) in no mode (the xDS CA signs in a child
process). The resident memory of each is printed for the record (`-s`), not asserted: it moves
with library versions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NO_ENVOY = ("kubernetes_asyncio", "grpc", "google.protobuf", "envoy", "cryptography")
# Entry module -> top-level modules it must not load on import.
FORBIDDEN = {
    "kubelb.app.manager": ("kubernetes_asyncio", "cryptography"),
    "kubelb.app.agent": NO_ENVOY,
    "kubelb.app.standalone": NO_ENVOY,
    "kubelb.dataplane.__main__": ("kubernetes_asyncio", "kubelb.kube", "grpc", "aiohttp"),
}

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({
    "modules": sorted(sys.modules),
    "rss_mib": int(status["VmRSS"].split()[0]) / 1024,
    "peak_mib": int(status["VmHWM"].split()[0]) / 1024,
}))
"""


@pytest.mark.parametrize("entry", sorted(FORBIDDEN))
def test_entry_module_loads_only_what_its_mode_uses(entry: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, entry], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout)
    print(f"{entry}: RSS {report['rss_mib']:.1f} MiB after import (peak {report['peak_mib']:.1f})")
    loaded = set(report["modules"])
    assert entry in loaded
    unwanted = sorted(
        m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN[entry])
    )
    assert not unwanted, f"{entry} imports {unwanted[:5]}"
