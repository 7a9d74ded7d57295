"""Pure parts of kubelb.localcluster and tests.support: binary versions and location, kubeconfigs,
certificates, the Ready condition a fake kubelet posts."""

from __future__ import annotations

import datetime
import ssl
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client

from kubelb.localcluster import binaries, certs, kubeconfig
from tests.support import kubeconfig as test_kubeconfig, nodes

GO_MOD = Path(__file__).resolve().parents[3] / "hack" / "controlplane" / "go.mod"


def _required(module: str) -> str:
    for line in GO_MOD.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == module:
            return parts[1]
    raise AssertionError(f"{module} not in {GO_MOD}")


def test_versions_match_the_go_module():
    assert _required("k8s.io/kubernetes") == binaries.K8S_VERSION
    assert _required("go.etcd.io/etcd/server/v3") == binaries.ETCD_VERSION


def test_default_dir_follows_build_sh(monkeypatch, tmp_path):
    monkeypatch.delenv(binaries.DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    expected = tmp_path / "kubelb/controlplane/k8s-v1.35.4-etcd-v3.6.5"
    assert binaries.default_dir() == expected
    monkeypatch.setenv(binaries.DIR_ENV, "/elsewhere")
    assert binaries.default_dir() == Path("/elsewhere")


def test_require_names_what_is_missing(tmp_path):
    (tmp_path / "etcd").write_text("")
    (tmp_path / "etcd").chmod(0o755)
    with pytest.raises(binaries.BinariesMissingError) as caught:
        binaries.require(tmp_path)
    assert "missing kube-apiserver, kube-controller-manager" in str(caught.value)
    assert "make controlplane" in str(caught.value)


def test_certificates_chain_and_carry_groups(tmp_path):
    ca = certs.create_ca(tmp_path, common_name="test-ca")
    admin = certs.issue(
        ca, tmp_path, "admin", common_name="me", organizations=["system:masters"], client=True
    )
    server = certs.issue(
        ca,
        tmp_path,
        "server",
        common_name="api",
        server=True,
        ip_addresses=["127.0.0.1"],
        dns_names=["localhost"],
    )
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca.cert), str(admin.cert), str(server.cert)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert verify.stdout.count(": OK") == 2
    subject = subprocess.run(
        ["openssl", "x509", "-in", str(admin.cert), "-noout", "-subject"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "O = system:masters" in subject
    context = ssl.create_default_context(cafile=str(ca.cert))
    context.load_cert_chain(str(server.cert), str(server.key))  # key matches the certificate
    assert list(tmp_path.glob("*.ext")) == []


def test_leaf_needs_a_usage(tmp_path):
    ca = certs.create_ca(tmp_path, common_name="test-ca")
    with pytest.raises(ValueError, match="server or client"):
        certs.issue(ca, tmp_path, "x", common_name="x")


def test_kubeconfig_round_trip(tmp_path):
    config = test_kubeconfig.token_config(
        cluster="tenant",
        server="https://127.0.0.1:1",
        ca_pem=b"PEM",
        user="u",
        token="t0k",
        namespace="ns",
    )
    path = kubeconfig.write(tmp_path / "sub" / "k", config)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = yaml.safe_load(path.read_text())
    assert test_kubeconfig.server_and_ca(loaded) == ("https://127.0.0.1:1", b"PEM")
    assert loaded["contexts"][0]["context"]["namespace"] == "ns"
    assert loaded["users"][0]["user"] == {"token": "t0k"}
    assert [p.name for p in path.parent.iterdir()] == ["k"]


def test_ready_condition_moves_transition_time_only_on_change():
    t0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    t1 = t0 + datetime.timedelta(minutes=1)
    first = nodes.ready_condition(True, t0, None)
    assert (first.status, first.reason, first.last_transition_time) == ("True", "KubeletReady", t0)
    same = nodes.ready_condition(True, t1, first)
    assert (same.last_heartbeat_time, same.last_transition_time) == (t1, t0)
    flipped = nodes.ready_condition(False, t1, same)
    assert (flipped.status, flipped.reason, flipped.last_transition_time) == (
        "False",
        "KubeletNotReady",
        t1,
    )
    assert isinstance(flipped, client.V1NodeCondition)
