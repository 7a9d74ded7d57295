"""Where the control-plane binaries (etcd, kube-apiserver, kube-controller-manager) live.

`hack/controlplane/build.sh` builds them from the Go module in `hack/controlplane/` into
`$XDG_CACHE_HOME/kubelb/controlplane/k8s-<version>-etcd-<version>/` (or `$KUBELB_CONTROLPLANE_DIR`);
this module computes the same folder. The versions here must match `hack/controlplane/go.mod`
(a unit test checks it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

K8S_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.5"
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager")
DIR_ENV = "KUBELB_CONTROLPLANE_DIR"
BUILD_HINT = "run `make controlplane` (hack/controlplane/build.sh) to build them"


class BinariesMissingError(RuntimeError):
    """Some control-plane binaries are not built."""


def default_dir() -> Path:
    """The folder build.sh fills: `$KUBELB_CONTROLPLANE_DIR` or the versioned cache folder."""
    explicit = os.environ.get(DIR_ENV)
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kubelb" / "controlplane" / f"k8s-{K8S_VERSION}-etcd-{ETCD_VERSION}"


def missing(directory: Path) -> list[str]:
    """Names of the binaries absent from (or not executable in) `directory`."""
    return [n for n in NAMES if not os.access(directory / n, os.X_OK)]


def require(directory: Path | None = None) -> Path:
    """`directory` (default: `default_dir()`) if it holds every binary, else a clear error."""
    where = directory or default_dir()
    absent = missing(where)
    if absent:
        raise BinariesMissingError(f"missing {', '.join(absent)} in {where}; {BUILD_HINT}")
    return where
