"""The helm of hack/helm/build.sh (located in its cache, never built here) and the charts it
renders: `render` returns the documents, `container_args` the args of a rendered Deployment."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHARTS = ROOT / "charts"
MANAGER, CCM = CHARTS / "kubelb-manager", CHARTS / "kubelb-ccm"


def binary() -> Path:
    """The cached helm (same folder as hack/helm/build.sh computes); skip when it was not built."""
    module = "helm.sh/helm/v4"
    words = (line.split() for line in (ROOT / "hack/helm/go.mod").read_text().splitlines())
    version = next(w[-1] for w in words if module in w and w[-1].startswith("v"))
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = os.environ.get("KUBELB_HELM_DIR") or f"{cache}/kubelb/tools/helm-{version}"
    path = Path(folder) / "helm"
    if not os.access(path, os.X_OK):
        pytest.skip(f"helm {version} is not built at {path}: run `make helm`")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary()), *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip


def values_args(values: Mapping[str, Any], tmp: Path) -> list[str | Path]:
    path = tmp / f"values-{len(list(tmp.glob('values-*')))}.yaml"
    # JSON is YAML: a values file exactly as the dict says, no --set escaping rules.
    path.write_text(json.dumps(values))
    return ["-f", path]


def lint(chart: Path, values: Mapping[str, Any], tmp: Path) -> subprocess.CompletedProcess[str]:
    return run("lint", "--strict", chart, *values_args(values, tmp))


def render(
    chart: Path,
    values: Mapping[str, Any],
    tmp: Path,
    *,
    release: str = "kubelb",
    namespace: str = "kubelb",
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    args: list[str | Path] = ["template", release, chart, "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    done = run(*args, *values_args(values, tmp))
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} documents"
    return found[0]


def container_args(docs: list[dict[str, Any]]) -> list[str]:
    """The one container's args of the one rendered Deployment."""
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]
