"""The cert-manager CRDs kubelb ships, vendored from the Go module
`github.com/cert-manager/cert-manager`.

Outputs: the cert-manager.io CustomResourceDefinitions (Certificate, CertificateRequest, Issuer,
ClusterIssuer), parsed, and the release they come from (`version()`). The manager writes
Certificates for LoadBalancer hostnames (`kubelb.manager.hostnames`); the local control plane
installs these CRDs so those writes are checked by the real schema. The files live in
configs/crds/cert-manager of the source tree (`make cert-manager-crds` regenerates them from the
module pinned in hack/cert-manager); the package reaches them through the link
kubelb/api/cert-manager-crds, and the wheel carries them as package data.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, cast

import yaml

DATA_DIR = Path(__file__).resolve().parent / "cert-manager-crds"
CRD_KIND = "CustomResourceDefinition"

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CertManagerDataError(RuntimeError):
    """The shipped CRD files are missing or not CRDs."""


def version() -> str:
    """The cert-manager release of the shipped files, e.g. `v1.21.0`."""
    try:
        return (DATA_DIR / "VERSION").read_text().strip()
    except OSError as exc:
        raise CertManagerDataError(f"no cert-manager CRDs shipped: {exc}") from exc


def crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions, sorted by name; a fresh copy per call."""
    return copy.deepcopy(list(_parsed()))


@functools.cache
def _parsed() -> tuple[dict[str, Any], ...]:
    found = sorted(DATA_DIR.glob("*.yaml")) if DATA_DIR.is_dir() else []
    if not found:
        raise CertManagerDataError(f"no cert-manager CRD files in {DATA_DIR}")
    docs: list[dict[str, Any]] = []
    for path in found:
        for doc in yaml.load_all(path.read_text(), Loader=_Loader):
            if doc is None:
                continue
            if not isinstance(doc, dict) or doc.get("kind") != CRD_KIND:
                raise CertManagerDataError(f"{path}: not a CustomResourceDefinition")
            docs.append(cast(dict[str, Any], doc))
    return tuple(sorted(docs, key=lambda d: str(d["metadata"]["name"])))
