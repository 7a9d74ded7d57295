"""Every benchmark suite still runs: `python -m bench SUITE --quick --out DIR` for each suite of
`bench.__main__.SUITES`, at smoke-test size, and writes its result files with the keys its
reports and the README's figures are read from. A change that breaks a benchmark (like Envoy's
route tables moving to RDS under the data-plane bench's feet) fails here rather than at the
next `make bench`. Numbers are not checked: at this size they mean nothing.

The control-plane suites need the test control plane and skip (fail when CI is set) without it,
as the API-server tests do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main, chaos
from tests import kube_fixtures

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("http", "tcp", "connrate", "bulk", "l7", "https", "handshakes")
PATHS = ("direct", "envoy", "python")
# Through a TLS listener: the proxies only (the backend speaks plain HTTP).
TLS_SCENARIOS = ("https", "handshakes")

# Suite -> (needs the control plane, the files it writes).
SUITES: dict[str, tuple[bool, tuple[str, ...]]] = {
    "dataplane": (False, ("dataplane.json", "dataplane.md")),
    "standalone_latency": (False, ("standalone_latency.json",)),
    "xds_snapshot": (False, ("xds_snapshot.json",)),
    "xds_update": (False, ("xds_update.json",)),
    "dataplane_apply_stall": (False, ("dataplane_apply_stall.json",)),
    "controlplane_scale": (True, ("controlplane_scale.json",)),
    "controlplane_convergence": (True, ("controlplane_convergence.json",)),
    "routes": (True, ("routes.json",)),
}


def check_dataplane(result: dict[str, Any]) -> None:
    assert {"settings", "raw", "medians", "ratios", "memory"} <= result.keys()
    for scenario in SCENARIOS:
        metric = "gbps" if scenario == "bulk" else "rps"
        for path in PATHS:
            if path == "direct" and scenario in TLS_SCENARIOS:
                continue
            assert result["medians"][scenario][path][metric] > 0, (scenario, path)
        for path in ("envoy", "python"):
            cost = "cpu_seconds_per_gb" if scenario == "bulk" else "cpu_us_per_request"
            assert cost in result["medians"][scenario][path], (scenario, path)
        assert {"envoy_to_direct", "python_to_direct", "python_to_envoy"} <= result["ratios"][
            scenario
        ].keys()
    for path in ("envoy", "python"):
        memory = result["memory"][path]
        assert memory["connections"] > 0
        assert {"rss_before_mib", "rss_after_mib", "bytes_per_connection"} <= memory.keys()


def check_standalone_latency(result: dict[str, Any]) -> None:
    for dataplane in ("envoy", "python"):
        assert {"runs", "median_s", "p90_s", "max_s"} <= result[dataplane].keys()
        assert result[dataplane]["runs"] > 0


def check_xds_snapshot(result: dict[str, Any]) -> None:
    assert {"listeners", "median_seconds", "median_translate_seconds", "payload_bytes"} <= (
        result.keys()
    )
    assert {"clusters", "endpoints", "listeners"} <= result["payload_bytes"].keys()


def check_xds_update(result: dict[str, Any]) -> None:
    assert set(result["changes"]) == {"add one LoadBalancer", "move one endpoint"}
    for row in result["changes"].values():
        for flavour in ("sotw", "delta"):
            assert {"bytes", "responses", "median_seconds"} <= row[flavour].keys()
            assert row[flavour]["responses"] > 0
        assert {"delta_vs_sotw_bytes", "delta_vs_sotw_seconds"} <= row.keys()


def check_dataplane_apply_stall(result: dict[str, Any]) -> None:
    keys = {"listeners_added", "apply_returned_after_s", "all_serving_after_s", "longest_gap_s",
            "steady_requests_during_apply", "failed_requests"}  # fmt: skip
    assert keys <= result.keys()
    assert result["listeners_added"] > 0


def check_controlplane_scale(result: dict[str, Any]) -> None:
    assert result["loadbalancers"] > 0
    keys = {
        "converged_after_last_create_seconds", "create_seconds", "api_floor_seconds",
        "ratio_to_api_floor", "manager_rss_mib", "manager_cpu_seconds", "snapshot_pushes",
        "api_writes_per_loadbalancer", "api_writes_by_resource", "runs", "medians",
    }  # fmt: skip
    assert keys <= result.keys()


def check_controlplane_convergence(result: dict[str, Any]) -> None:
    assert result["services"] > 0
    for key in ("address_in_status", "first_byte", "api_floor"):
        assert {"p50_s", "p99_s", "max_s"} <= result[key].keys()
    assert "ratio_address_p50_to_floor_p50" in result


def check_routes(result: dict[str, Any]) -> None:
    assert result["routes"] > 0
    keys = {
        "first_200_p50_seconds", "first_200_p99_seconds", "all_serving_after_last_create_seconds",
        "api_floor_seconds", "ratio_to_api_floor", "manager_peak_rss_mib", "api_writes_per_route",
        "api_writes_per_route_without_leases",
    }  # fmt: skip
    assert keys <= result.keys()


CHECKS = {
    "dataplane": check_dataplane,
    "standalone_latency": check_standalone_latency,
    "xds_snapshot": check_xds_snapshot,
    "xds_update": check_xds_update,
    "dataplane_apply_stall": check_dataplane_apply_stall,
    "controlplane_scale": check_controlplane_scale,
    "controlplane_convergence": check_controlplane_convergence,
    "routes": check_routes,
}


def test_every_suite_has_a_smoke_run() -> None:
    assert set(SUITES) == set(CHECKS) == set(bench_main.SUITES)


@pytest.mark.parametrize("suite", list(SUITES))
def test_suite_runs_and_writes_its_results(suite: str, tmp_path: Path) -> None:
    needs_control_plane, files = SUITES[suite]
    if needs_control_plane:
        kube_fixtures.require_binaries()
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "bench", suite, "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    log = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, f"python -m bench {suite} --quick failed:\n{log}"
    # The data-plane chart is written only where matplotlib (the bench extra) is installed.
    assert set(files) <= {p.name for p in out.iterdir()}, log
    CHECKS[suite](json.loads((out / files[0]).read_text()))


def test_chaos_quick_runs_every_scenario(tmp_path: Path) -> None:
    """`make chaos` (not a `bench` suite: it is a fault run, not a measurement of speed) at its
    quick size: every scenario runs and reports its figures."""
    kube_fixtures.require_binaries()  # the API-server scenario needs the control plane
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    log = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, f"python -m bench.chaos --quick failed:\n{log}"
    results = json.loads((out / "chaos.json").read_text())["results"]
    assert set(results) == set(chaos.LABELS), log
    assert "failed" in results["envoy_kill"]
    assert {"tried", "crashes", "wrongly_stopped"} <= results["hostile_inputs"].keys()
    assert "change_applied_after_s" in results["api_server_stop"], log
    for plane in ("envoy", "python"):
        assert results[f"route_churn_{plane}"]["edits"] == chaos.Sizes.quick().route_edits, log
        assert "failed" in results[f"route_churn_{plane}"], log
