"""Every golden Envoy output set, `tests/golden/{xds,chain}/out/<case>.*.yaml`, loads in a real
Envoy.

Each case becomes a bootstrap with the listeners and clusters as static resources and is checked
with `envoy --mode validate`, which runs Envoy's full config validation (proto constraints,
extension factories, listener and cluster construction) without binding ports. EDS clusters
cannot be static, so each becomes a STATIC cluster with its ClusterLoadAssignment inline: the
same endpoints and options that EDS would deliver. HTTP listeners take their RouteConfiguration
by RDS, which a static bootstrap cannot serve, so each gets its route table inline (Envoy builds
and checks an inline table as it would one from RDS); SDS certificates become static secrets.
Deprecated fields fail the test too, so the translator stays off config that a future Envoy
will reject.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelb.envoy import binary
from tests.golden import golden

SUITES = (golden.Suite.named("xds"), golden.Suite.named("chain"))
CASES = [
    pytest.param(suite, case, id=f"{suite.root.name}/{case.stem}")
    for suite in SUITES
    for case in suite.cases()
    if "expectError" not in suite.load(case)
]

pytestmark = pytest.mark.integration


def load_outputs(suite: golden.Suite, case: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, path in suite.existing(case).items():
        out[kind] = yaml.safe_load(path.read_text())
    return out


def static_bootstrap(outputs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    assignments = {e["clusterName"]: e for e in outputs.get("endpoints", [])}
    clusters = []
    for cluster in outputs.get("clusters", []):
        if cluster.get("type") == "EDS":
            name = cluster["name"]
            assert name in assignments, f"EDS cluster {name} has no ClusterLoadAssignment"
            cluster = {k: v for k, v in cluster.items() if k != "edsClusterConfig"}
            cluster |= {"type": "STATIC", "loadAssignment": assignments.pop(name)}
        clusters.append(cluster)
    assert not assignments, f"assignments without an EDS cluster: {sorted(assignments)}"
    routes = {r["name"]: r for r in outputs.get("routes", [])}
    used: set[str] = set()
    listeners = [_inline_routes(li, routes, used) for li in outputs.get("listeners", [])]
    assert used == set(routes), f"route tables without a listener: {sorted(set(routes) - used)}"
    return {
        "node": {"id": "golden", "cluster": "golden"},
        "staticResources": {
            "listeners": listeners,
            "clusters": clusters,
            "secrets": outputs.get("secrets", []),
        },
    }


def _inline_routes(
    listener: dict[str, Any], routes: dict[str, Any], used: set[str]
) -> dict[str, Any]:
    """`listener` with each RDS reference replaced by the table it names (recorded in `used`),
    and each SDS certificate named as a static secret (the bootstrap's `secrets`)."""
    for chain in listener.get("filterChains", []):
        for f in chain.get("filters", []):
            hcm = f.get("typedConfig", {})
            rds = hcm.pop("rds", None)
            if rds is not None:
                name = rds["routeConfigName"]
                assert name in routes, f"listener {listener['name']}: no route table {name}"
                hcm["routeConfig"] = routes[name]
                used.add(name)
        context = chain.get("transportSocket", {}).get("typedConfig", {})
        for sds in context.get("commonTlsContext", {}).get("tlsCertificateSdsSecretConfigs", []):
            sds.pop("sdsConfig", None)
    return listener


@pytest.mark.parametrize(("suite", "case"), CASES)
def test_envoy_accepts_golden_output(suite: golden.Suite, case: Path, tmp_path: Path) -> None:
    outputs = load_outputs(suite, case.stem)
    assert outputs, f"{case.stem} has no golden outputs"
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(static_bootstrap(outputs), indent=1))
    result = subprocess.run(
        [
            str(binary.find_envoy()),
            "--mode", "validate",
            "--config-path", str(config),
            "--disable-hot-restart",
            "--log-level", "warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"envoy rejected {case.stem}:\n{log}"
    assert "OK" in result.stdout, log
    assert "Deprecated field" not in log, f"{case.stem} uses deprecated Envoy fields:\n{log}"
