"""The vendored cert-manager CRDs: the cert-manager.io kinds, from the release hack/cert-manager
pins (go.mod names the version VERSION records)."""

from __future__ import annotations

from pathlib import Path

from kubelb.api import certmanager

ROOT = Path(__file__).resolve().parents[3]


def test_the_cert_manager_io_kinds_are_shipped() -> None:
    names = [d["metadata"]["name"] for d in certmanager.crds()]
    assert names == [
        "certificaterequests.cert-manager.io",
        "certificates.cert-manager.io",
        "clusterissuers.cert-manager.io",
        "issuers.cert-manager.io",
    ]
    (certificate,) = [d for d in certmanager.crds() if d["spec"]["names"]["kind"] == "Certificate"]
    (served,) = [v for v in certificate["spec"]["versions"] if v["served"]]
    assert served["name"] == "v1"
    spec = served["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert {"secretName", "dnsNames", "issuerRef", "secretTemplate"} <= set(spec)


def test_version_is_the_pinned_module() -> None:
    go_mod = (ROOT / "hack" / "cert-manager" / "go.mod").read_text()
    assert f"github.com/cert-manager/cert-manager {certmanager.version()}" in go_mod
