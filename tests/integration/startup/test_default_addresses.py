"""Every mode starts with no address flag at all and binds its defaults as documented (`:PORT` is
every interface, IPv4 and IPv6); a port already in use ends the mode with one log line and exit
code 1. Real `kubelb` processes, each in its own network namespace (see `in_netns.py`): the
defaults :8001, :8081, :9443 and :9445 are then free even while other tests use this host's
ports, and nothing but the argument parser chooses the addresses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
HELPER = Path(__file__).with_name("in_netns.py")
UNSHARE = ["unshare", "--map-root-user", "--net"]
EVERY = {"127.0.0.1": True, "127.0.0.2": True, "::1": True}
LOOPBACK = {"127.0.0.1": True, "127.0.0.2": False, "::1": False}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) +\S+: ")
# An unreachable API server: binding comes before any call to it, and nothing here needs one.
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, check=False)
    return probe.returncode == 0


needs_netns = pytest.mark.skipif(
    not _namespaces_work(), reason="needs `unshare --map-root-user --net` (user namespaces)"
)


@dataclass(frozen=True)
class Mode:
    name: str
    argv: list[str]
    servers: dict[str, tuple[int, dict[str, bool]]]  # logged name -> (default port, reach)
    env: dict[str, str]


def modes(tmp: Path) -> dict[str, Mode]:
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    (tmp / "config").mkdir()
    return {
        # The process deployer keeps the xDS CA in --state-dir, so every server binds here.
        "manager": Mode(
            "manager",
            [
                "--mode=manager",
                f"--kubeconfig={kubeconfig}",
                f"--state-dir={tmp / 'state'}",
                "--envoy-deployer=process",
            ],
            {"xDS server": (8001, EVERY), "probes": (8081, EVERY), "metrics": (9443, EVERY)},
            {},
        ),
        # The default deployer reads the xDS CA from the API server, which this namespace lacks:
        # the manager keeps retrying with its probes and metrics up, and serves xDS once it can.
        "manager-kubernetes": Mode(
            "manager-kubernetes",
            ["--mode=manager", f"--kubeconfig={kubeconfig}"],
            {"probes": (8081, EVERY), "metrics": (9443, EVERY)},
            {},
        ),
        "agent": Mode(
            "agent",
            ["--mode=agent", "--cluster-name=shop", f"--kubelb-kubeconfig={kubeconfig}"],
            {"probes": (8081, EVERY), "metrics": (9445, EVERY)},
            {"KUBECONFIG": str(kubeconfig)},
        ),
        # Standalone's defaults are loopback only, as its --help says: its xDS server hands
        # out the whole configuration.
        "standalone": Mode(
            "standalone",
            [
                "--mode=standalone",
                f"--config={tmp / 'config'}",
                f"--state-dir={tmp / 'state'}",
                "--drain-seconds=0",
            ],
            {"admin": (8081, LOOPBACK), "xDS server": (8001, LOOPBACK)},
            {},
        ),
    }


def run_in_netns(mode: Mode, occupy: int | None = None) -> dict[str, object]:
    spec = {
        "argv": mode.argv,
        "env": mode.env,
        "servers": list(mode.servers),
        "ports": [port for port, _ in mode.servers.values()],
        "occupy": occupy,
    }
    done = subprocess.run(
        [*UNSHARE, sys.executable, str(HELPER), json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def stray_output(stderr: str) -> list[str]:
    """Lines that are not log records: tracebacks, or C libraries writing on their own."""
    return [line for line in stderr.splitlines() if line and not LOG_LINE.match(line)]


def levels(stderr: str, level: str) -> list[str]:
    return [line for line in stderr.splitlines() if (m := LOG_LINE.match(line)) and m[1] == level]


@needs_netns
@pytest.mark.parametrize("name", ["manager", "manager-kubernetes", "agent", "standalone"])
def test_mode_binds_its_default_addresses(name: str, tmp_path: Path) -> None:
    mode = modes(tmp_path)[name]
    result = run_in_netns(mode)
    stderr = str(result["stderr"])
    assert result["reachable"] == {str(port): reach for port, reach in mode.servers.values()}, (
        stderr
    )
    assert result["returncode"] == 0, stderr
    assert not stray_output(stderr), stderr


CASES = [
    (mode, server, port)
    for mode, servers in {
        "manager": {"xDS server": 8001, "probes": 8081, "metrics": 9443},
        "agent": {"probes": 8081, "metrics": 9445},
        "standalone": {"admin": 8081, "xDS server": 8001},
    }.items()
    for server, port in servers.items()
]


@needs_netns
@pytest.mark.parametrize(("name", "server", "port"), CASES)
def test_a_port_in_use_ends_the_mode_with_one_line(
    name: str, server: str, port: int, tmp_path: Path
) -> None:
    result = run_in_netns(modes(tmp_path)[name], occupy=port)
    stderr = str(result["stderr"])
    assert result["returncode"] == 1, stderr
    assert not stray_output(stderr), stderr
    errors = levels(stderr, "ERROR")
    assert len(errors) == 1, stderr
    assert re.search(rf"{server} cannot listen on \S*:{port}: Address already in use", errors[0])
