"""The vendored prometheus-operator CRDs (`make prometheus-operator-crds`): the kinds the manager
writes, from the release pinned in hack/prometheus-operator/go.mod, and the cluster-info
kubeconfig the local control plane publishes as kubeadm does."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kubelb.localcluster import clusterinfo, crds
from kubelb.manager import kubeconfigs

ROOT = Path(__file__).resolve().parents[3]
MODULE = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"


def test_version_is_the_module_version_pinned_in_go_mod():
    go_mod = (ROOT / "hack" / "prometheus-operator" / "go.mod").read_text()
    pinned = re.search(rf"^require {re.escape(MODULE)} (v\S+)$", go_mod, re.MULTILINE)
    assert pinned is not None, go_mod
    version = (crds.PROMETHEUS_OPERATOR_DIR / "VERSION").read_text().strip()
    assert version == pinned.group(1)
    go_sum = (ROOT / "hack" / "prometheus-operator" / "go.sum").read_text()
    assert f"{MODULE} {version} h1:" in go_sum


def test_files_are_the_pod_and_service_monitor_crds_of_that_release():
    docs = crds.load(crds.crd_files(crds.PROMETHEUS_OPERATOR_DIR))
    version = (crds.PROMETHEUS_OPERATOR_DIR / "VERSION").read_text().strip()
    assert sorted(d["spec"]["names"]["kind"] for d in docs) == ["PodMonitor", "ServiceMonitor"]
    for doc in docs:
        assert doc["spec"]["group"] == "monitoring.coreos.com"
        assert [v["name"] for v in doc["spec"]["versions"]] == ["v1"]
        annotations = doc["metadata"]["annotations"]
        assert annotations["operator.prometheus.io/version"] == version.removeprefix("v")


def test_cluster_info_kubeconfig_reads_back_as_upstream_reads_it():
    text = clusterinfo.cluster_info_kubeconfig("https://127.0.0.1:6443", b"PEM")
    assert kubeconfigs.server_from_cluster_info({"data": {"kubeconfig": text}}) == (
        "https://127.0.0.1:6443", b"PEM")  # fmt: skip
    assert yaml.safe_load(text)["users"] is None  # no credentials in a public ConfigMap
