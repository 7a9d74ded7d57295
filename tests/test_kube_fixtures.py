"""Without the control-plane binaries, the tests that need an API server skip and the run says so
in one line with the way to build them; with CI set they fail instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDS_CLUSTERS = """
def test_management(management):
    pass


def test_tenant(tenant):
    pass


def test_without_a_cluster():
    pass
"""


def run_without_binaries(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_needs_clusters.py"
    test.write_text(NEEDS_CLUSTERS)
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(KUBELB_CONTROLPLANE_DIR=str(tmp_path / "no-binaries"), **env)
    argv = [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*argv, "-p", "tests.kube_fixtures"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def test_skips_are_counted_in_one_line(tmp_path: Path) -> None:
    result = run_without_binaries(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "tests skipped" in line]
    assert lines == [
        f"2 tests skipped: no Kubernetes control plane (binaries missing in "
        f"{tmp_path / 'no-binaries'}); build them with `make controlplane`"
    ]


def test_ci_fails_instead_of_skipping(tmp_path: Path) -> None:
    result = run_without_binaries(tmp_path, CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 errors" in result.stdout
    assert "CI is set and the control plane cannot run" in result.stdout
    assert "tests skipped" not in result.stdout
